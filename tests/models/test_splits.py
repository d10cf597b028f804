"""Walk-forward splits never let a training target or context reach an evaluated row."""

import pytest

from models.splits import min_gap, train_val_split, walk_forward


def test_train_val_split_leaves_the_gap():
    split = train_val_split(1_000, 0.2, gap=30)
    assert split.val == range(800, 1_000)
    assert split.fit == range(0, 770)
    assert split.val.start - split.fit.stop == 30


@pytest.mark.parametrize("horizon, burn_in", [(1, 16), (15, 64)])
def test_walk_forward_folds_are_ordered_disjoint_and_gapped(horizon, burn_in):
    gap = min_gap(horizon, burn_in)
    splits = walk_forward(10_000, folds=4, first_test_fraction=0.5, val_fraction=0.15, gap=gap)
    assert [s.fold for s in splits] == [0, 1, 2, 3]
    assert splits[0].test.start == 5_000 and splits[-1].test.stop == 10_000
    for split in splits:
        # Targets look `horizon` ahead; the last fit target must end before validation begins,
        # and validation's last target before the test block (plus the recurrent context).
        assert split.fit.stop - 1 + horizon < split.val.start - burn_in
        assert split.val.stop - 1 + horizon < split.test.start - burn_in + 1
        assert split.val.stop + gap == split.test.start
    for before, after in zip(splits, splits[1:]):
        assert before.test.stop == after.test.start
        assert after.fit.stop > before.fit.stop  # expanding window


def test_too_little_data_is_refused():
    with pytest.raises(ValueError, match="too few"):
        train_val_split(50, 0.2, gap=79)
    with pytest.raises(ValueError, match="too few"):
        walk_forward(10, folds=20, first_test_fraction=0.5, val_fraction=0.1, gap=1)
