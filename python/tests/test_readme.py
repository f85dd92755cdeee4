"""The README's Python section runs as written: its program is
`examples/quickstart.py`, which prints the changes `testdata/README.md`
lists for the CDC fixture's durable mutations (1 to 8), and not mutation 9,
written past the durable offset."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "python" / "examples" / "quickstart.py"


def python_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_program_is_the_quickstart_example():
    blocks = re.findall(r"```python\n(.*?)```", python_section(), re.S)
    assert blocks, "no python block in the README's Python section"
    example = QUICKSTART.read_text()
    code = example.split('"""', 2)[2].lstrip("\n")  # after its docstring
    assert blocks[0] == code


def test_the_readme_commands_name_the_example():
    commands = re.findall(r"```sh\n(.*?)```", python_section(), re.S)[0]
    assert "pip install ./python" in commands
    assert "python python/examples/quickstart.py" in commands


def test_the_quickstart_prints_the_fixtures_durable_changes():
    out = subprocess.run([sys.executable, str(QUICKSTART)], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    # testdata/README.md: mutation 2 is a static cell and a row; the others
    # one change each; a static row or an update without a row marker is an
    # `update`, an INSERT (row marker) an `insert`.
    want = [
        ("insert", "shop.orders", "{'id': 1}"),  # 1
        ("update", "shop.readings", "{'sensor': 's1', 'day': Date(19675)}"),  # 2, static
        ("insert", "shop.readings", None),  # 2
        ("insert", "shop.readings", None),  # 3, TTL
        ("update", "shop.orders", "{'id': 1}"),  # 4
        ("update", "shop.stock", "{'sku': 'apple'}"),  # 5
        ("delete_range", "shop.readings", "{'sensor': 's1', 'day': Date(19675)}"),  # 6
        ("delete_partition", "shop.orders", "{'id': 2}"),  # 7
        ("insert", "shop.orders", "{'id': 3}"),  # 8
    ]
    assert len(lines) == len(want), out.stdout
    for line, (kind, table, key) in zip(lines, want):
        assert line.startswith(f"{kind} {table} "), line
        if key is not None:
            assert line.startswith(f"{kind} {table} {key} "), line
    assert "'id': 4" not in out.stdout
    assert "'customer': 'ada'" in lines[0] and "Decimal('12.50')" in lines[0]
