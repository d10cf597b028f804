"""A run's predictions as a parquet file written a row group at a time (backtests.predictions_file)."""

import pandas as pd
import pytest

from backtests.predictions_file import file_frames, with_context, write_frames
from strategies.decision_log import read_predictions_parquet


def frame(start: int, rows: int) -> pd.DataFrame:
    times = [pd.Timestamp("2025-08-18", tz="UTC") + pd.Timedelta(minutes=i) for i in range(start, start + rows)]
    index = pd.DatetimeIndex(times, name="close_time", dtype="datetime64[ns, UTC]")
    return pd.DataFrame({"close": [float(i) for i in range(start, start + rows)], "side": [1] * rows,
                         "reason": pd.array([f"r{i}" for i in range(start, start + rows)], dtype=pd.StringDtype("pyarrow"))},
                        index=index)


def test_frames_written_as_row_groups_read_back_as_their_concatenation(tmp_path):
    path = tmp_path / "p.parquet"
    parts = [frame(0, 3), frame(3, 0), frame(3, 2)]
    write_frames(path, parts)
    assert [len(part) for part in file_frames(path)] == [3, 2]  # the empty one skipped
    pd.testing.assert_frame_equal(read_predictions_parquet(path), pd.concat([parts[0], parts[2]]))
    joined = tmp_path / "joined.parquet"  # a walk-forward's join: each row group with its window
    write_frames(joined, (part.assign(window=number) for number in (1, 2) for part in file_frames(path)))
    expected = pd.concat([pd.concat([parts[0], parts[2]]).assign(window=number) for number in (1, 2)])
    pd.testing.assert_frame_equal(read_predictions_parquet(joined), expected)


def test_no_rows_write_the_first_frames_columns_and_no_frames_are_an_error(tmp_path):
    write_frames(tmp_path / "empty.parquet", [frame(0, 0), frame(5, 0)])
    assert read_predictions_parquet(tmp_path / "empty.parquet").columns.tolist() == ["close", "side", "reason"]
    with pytest.raises(ValueError, match="no frames"):
        write_frames(tmp_path / "none.parquet", [])


def test_file_frames_read_only_the_columns_asked_for_that_the_file_has(tmp_path):
    path = tmp_path / "p.parquet"
    write_frames(path, [frame(0, 3), frame(3, 2)])
    parts = list(file_frames(path, ["reason", "volatility"]))
    assert [list(part.columns) for part in parts] == [["reason"], ["reason"]]
    assert parts[1].index.equals(frame(3, 2).index) and parts[0]["reason"].dtype == pd.StringDtype("pyarrow")


@pytest.mark.parametrize(("before", "after"), [(0, 0), (3, 0), (0, 4), (5, 7), (100, 100)])
def test_each_row_comes_once_with_the_rows_around_it_asked_for(before, after):
    whole = frame(0, 50)
    chunks = [whole.iloc[start:stop] for start, stop in [(0, 3), (3, 4), (4, 4), (4, 20), (20, 22), (22, 50)]]
    given = []
    for context, rows in with_context(chunks, before, after):
        first, stop = whole.index.get_loc(context.index[rows][0]), whole.index.get_loc(context.index[rows][-1]) + 1
        given += list(range(first, stop))
        # As many rows before and after as asked for, or as there are.
        assert context.index.equals(whole.index[max(0, first - before) : min(len(whole), stop + after)])
    assert given == list(range(50))
