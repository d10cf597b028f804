"""The layout is the architecture: each room one pipeline stage, importing only from rooms below it."""

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

# Bottom to top: history, forecasting, trading, backtesting, sweeps, reports, running nodes, the command line.
ROOMS = ["marketdata", "models", "strategies", "backtests", "sweeps", "reporting", "nodes", "scripts"]
MAX_LINES = 400
STRATEGY_MAX_LINES = 350
LONGER_MODULES: dict[str, str] = {}  # path -> why it may be longer than MAX_LINES (none today)


def modules() -> list[Path]:
    return sorted(path for room in ROOMS for path in (PROJECT_ROOT / room).rglob("*.py"))


def imported_rooms(path: Path) -> set[str]:
    """The rooms a module imports from, at any depth of the module (lazy imports too)."""
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""] if (
            isinstance(node, ast.ImportFrom) and node.level == 0) else []
        rooms |= {name.split(".")[0] for name in names} & set(ROOMS)
    return rooms


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_imports_run_only_downward(path):
    room = path.relative_to(PROJECT_ROOT).parts[0]
    above = {other for other in imported_rooms(path) if ROOMS.index(other) > ROOMS.index(room)}
    assert not above, f"{path.relative_to(PROJECT_ROOT)} ({room}) imports from rooms above it: {sorted(above)}"


def test_the_import_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from nodes.live import LiveSettings\nimport models.network\n")
    assert imported_rooms(module) == {"nodes", "models"}


def test_modules_stay_short():
    long = {str(path.relative_to(PROJECT_ROOT)): n for path in modules()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and str(path.relative_to(PROJECT_ROOT)) not in LONGER_MODULES}
    assert not long, f"modules over {MAX_LINES} lines without a stated reason: {long}"
    strategy = len((PROJECT_ROOT / "strategies" / "lstm_strategy.py").read_text().splitlines())
    assert strategy < STRATEGY_MAX_LINES, f"strategies/lstm_strategy.py has {strategy} lines"


def test_no_second_copies():
    text = {path: path.read_text() for path in modules()}
    assert not [p for p, t in text.items() if "_Legacy" in t], "legacy copies of the code are measured against git history instead"
    configs = [p for p, t in text.items() if "class ModelConfig" in t or "class LSTMConfig" in t]
    assert [str(p.relative_to(PROJECT_ROOT)) for p in configs] == ["models/network.py"]


def test_no_test_module_shadows_a_room():
    """pytest puts each test folder on sys.path (prepend mode), so tests/fakes/sweeps.py would hide
    the sweeps package from every test collected after it; test basenames must be unique for the same reason."""
    names = [path.stem for path in (PROJECT_ROOT / "tests").rglob("*.py") if path.stem not in ("__init__", "conftest")]
    assert not set(names) & set(ROOMS), f"test modules named like a room: {sorted(set(names) & set(ROOMS))}"
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"test module basenames used twice: {repeated}"
