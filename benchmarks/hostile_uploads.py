"""Hostile uploads: the time and memory each import spends on a file made to tie up a worker.

    .venv/bin/python benchmarks/hostile_uploads.py [--only NAME ...] [--imports statement,baselines,index]
                                                   [--timeout 180] [--memory-cap-gb 4]

The hostile files of tests/test_hostile_uploads.py, at the issue's sizes or more (the zip bomb unpacks to 600
MB from 2.3 MB, the wide xlsx row has 1,000,000 cells), are posted through each import's page as a person
uploads them, signed in, each in a fresh process (so each memory peak is its own) on a copy of a throw-away
SQLite database. Printed per file and import: the wall time and CPU time of the request, the process' peak
resident memory (VmHWM) above what it held before the upload, the answer's status and its first problem. A
process still busy after --timeout is stopped, and its peak so far is printed. Beside them, yardsticks from
the same run: a normal 1,000-line statement imported as CSV and as xlsx; a statement of 20,000 lines (the most
one import takes) as CSV and as xlsx, and 200,000 baseline rows (the most), of merchants the database does not
hold, read and checked whole before they are refused: the largest files the limits admit. The machine's load
average is printed too: other work on it slows every figure.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import test_hostile_uploads as hostile  # noqa: E402

MB = 1024 * 1024
IMPORTS = {  # url, form field, user
    "statement": ("/finance/reconciliation/import", "statement", "finance"),
    "baselines": ("/analytics/baselines", "baselines", "finance"),
    "index": ("/index/data/import", "values", "admin"),
}
CONFIG = {"WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}


def statement_rows(lines: int) -> list[list[str]]:
    start = date(2026, 11, 2)
    return [[(start + timedelta(days=n % 28)).isoformat(), f"S{n:07d}", f"消费券结算 JS{start:%Y%m%d}{n % 999_999 + 1:06d}",
             "港城老味道餐饮有限公司", "6222020000001234", f"{(n % 5000) + 1}.{n % 100:02d}"] for n in range(lines)]


def statement_csv(lines: int) -> bytes:
    rows = [hostile.STATEMENT_HEADER.strip().split(",")] + statement_rows(lines)
    return ("\ufeff" + "".join(",".join(r) + "\n" for r in rows)).encode()


def statement_xlsx(lines: int) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(hostile.STATEMENT_HEADER.strip().split(","))
    for row in statement_rows(lines):
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def files() -> list[tuple[str, bytes, tuple[str, ...]]]:
    """(name, content, imports to post it to)."""
    full = {"zip-bomb.xlsx": lambda: hostile.zip_bomb_xlsx(600 * MB),
            "wide-row.xlsx": lambda: hostile.wide_row_xlsx(1_000_000)}
    made = [(h.name, (full.get(h.name) or h.build)(), tuple(IMPORTS)) for h in hostile.HOSTILE]
    made.append(("too-large-12mb.csv", b"2026-11-24,S1,x,,,1.00\n" * (12 * MB // 23), tuple(IMPORTS)))
    return made


def baselines_csv(rows: int) -> bytes:
    """Sales of merchants the database does not hold: every row is read and checked, then refused."""
    return ("统一社会信用代码,日期,销售额（元）\n" + "".join(
        f"91320700MA{n % 5000:07d}X,{date(2026, 1, 1) + timedelta(days=n // 5000)},{n % 9000 + 100}.50\n"
        for n in range(rows))).encode()


def yardsticks() -> list[tuple[str, bytes, tuple[str, ...]]]:
    """A normal statement, and the largest files the limits admit (the bound on a worker's time)."""
    return [("statement-1000.csv", statement_csv(1_000), ("statement",)),
            ("statement-1000.xlsx", statement_xlsx(1_000), ("statement",)),
            ("statement-20000.csv", statement_csv(20_000), ("statement",)),
            ("statement-20000.xlsx", statement_xlsx(20_000), ("statement",)),
            ("baselines-200k.csv", baselines_csv(200_000), ("baselines",))]


def make_database(path: Path) -> None:
    from flask_migrate import upgrade

    from tests.factories import PASSWORD
    from voucher import create_app
    from voucher.accounts.services import create_user
    from voucher.campaigns.measures_seed import load_measures
    from voucher.cli import SEED_DIR
    from voucher.core.db import db
    from voucher.core.permissions import Role
    from voucher.info_consumption_index import catalogue

    app = create_app({**CONFIG, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        with contextlib.redirect_stderr(io.StringIO()):  # the migrations' log
            upgrade()
        load_measures(SEED_DIR / "measures.toml")
        create_user("finance", PASSWORD, Role.FINANCE)
        create_user("admin", PASSWORD, Role.ADMIN)
        catalogue.install_default_catalogue()
        db.session.commit()
        db.engine.dispose()


def _peak_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def child(database: str, kind: str, path: str, out: str) -> None:
    """One upload in this process; writes a JSON line when it starts and one with the result."""
    from tests.factories import PASSWORD
    from voucher import create_app

    url, field, user = IMPORTS[kind]
    content = Path(path).read_bytes()
    app = create_app({**CONFIG, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"})
    client = app.test_client()
    assert client.post("/login", data={"username": user, "password": PASSWORD}).status_code == 302
    client.post(url, data={field: (io.BytesIO(b"x"), "warm-up.csv")}, content_type="multipart/form-data")
    before = _peak_kb()
    report = open(out, "w")
    report.write(json.dumps({"started": True, "before_kb": before}) + "\n")
    report.flush()
    cpu, wall = time.process_time(), time.perf_counter()
    page = client.post(url, data={field: (io.BytesIO(content), Path(path).name)}, content_type="multipart/form-data")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    text = page.get_data(as_text=True)
    found = re.search(r'<ul class="problems"><li>(.*?)</li>', text, re.S) or re.search(r'<p class="lead">(.*?)</p>', text, re.S)
    answer = found.group(1) if found else ("imported" if page.status_code in (302, 303) else text[:120])
    report.write(json.dumps({"status": page.status_code, "wall": wall, "cpu": cpu, "before_kb": before,
                             "peak_kb": _peak_kb(), "answer": answer}, ensure_ascii=False) + "\n")
    report.close()


def measure(database: Path, kind: str, path: Path, timeout: float, memory_cap_gb: float) -> dict:
    def cap():
        import resource

        limit = int(memory_cap_gb * 1024 * MB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out, errors = path.with_suffix(".out"), path.with_suffix(".err")
    out.unlink(missing_ok=True)
    with open(errors, "w") as stderr:
        process = subprocess.Popen([sys.executable, __file__, "--child", str(database), kind, str(path), str(out)],
                                   stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=cap)
    started, peak = None, 0

    def reported() -> list[dict]:
        text = out.read_text() if out.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    while process.poll() is None:
        try:
            peak = max(peak, _peak_kb(process.pid))
        except OSError:
            pass
        if started is None and reported():
            started = time.perf_counter()
        if started is not None and time.perf_counter() - started > timeout:
            process.kill()
            process.wait()
            return {"status": "killed", "wall": None, "cpu": None, "before_kb": reported()[0]["before_kb"],
                    "peak_kb": peak, "answer": f"still working after {timeout:.0f} s: stopped"}
        time.sleep(0.2)
    lines = reported()
    if not lines or "status" not in lines[-1]:
        error = errors.read_text().strip().splitlines()
        return {"status": "crashed", "wall": None, "cpu": None, "before_kb": lines[0]["before_kb"] if lines else 0,
                "peak_kb": peak, "answer": error[-1] if error else f"exit {process.returncode}"}
    return lines[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="file names to run (default: all)")
    parser.add_argument("--imports", default=",".join(IMPORTS))
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--memory-cap-gb", type=float, default=4)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    kinds = [k for k in args.imports.split(",") if k]
    print(f"Hostile uploads, {ROOT}: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'file':<24} {'size':>9}  {'import':<10} {'status':>7} {'wall':>8} {'cpu':>8} {'peak +':>9}  answer")
    with tempfile.TemporaryDirectory(prefix="hostile-") as work:
        work = Path(work)
        template = work / "template.db"
        make_database(template)
        for name, content, targets in yardsticks() + files():
            if args.only and name not in args.only:
                continue
            path = work / name
            path.write_bytes(content)
            for kind in (k for k in kinds if k in targets):
                database = work / "run.db"
                shutil.copyfile(template, database)
                result = measure(database, kind, path, args.timeout, args.memory_cap_gb)
                growth = max(0, result["peak_kb"] - result["before_kb"]) / 1024
                wall = (f"{result['wall']:.2f} s" if result["wall"] is not None
                        else f">{args.timeout:.0f} s" if result["status"] == "killed" else "—")
                cpu = f"{result['cpu']:.2f} s" if result["cpu"] is not None else "—"
                answer = re.sub(r"\s+", " ", str(result["answer"]))[:90]
                print(f"{name:<24} {len(content) / 1024:>7,.0f} K  {kind:<10} {result['status']:>7} {wall:>8} "
                      f"{cpu:>8} {growth:>6,.0f} MB  {answer}", flush=True)
            path.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
