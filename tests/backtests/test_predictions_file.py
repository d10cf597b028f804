"""A run's predictions as a parquet file written a row group at a time (backtests.predictions_file)."""

import pandas as pd
import pytest

from backtests.predictions_file import file_frames, write_frames
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
