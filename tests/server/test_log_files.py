"""An app's log on disk: lines come back in order with their times, the file turns over
at its cap (two files at most), and a line cut short by a crash is skipped."""

from __future__ import annotations

from pathlib import Path

from coldsnap.server.log_files import LogFile, LogLine
from coldsnap.server.logs import AppLogs, LogBook


def test_lines_come_back_after_a_restart_with_their_times(tmp_path: Path) -> None:
    book = LogBook(echo=False, directory=tmp_path / "logs")
    book.write("app", "[cs-1] before")
    book.write("other", "[cs-2] elsewhere")
    book.close()
    again = LogBook(echo=False, directory=tmp_path / "logs")  # a restarted server's book
    lines, position = again.app("app").tail_timed(10)
    assert [line.text for line in lines] == ["[cs-1] before"] and position == 1
    again.write("app", "[cs-3] after")
    assert again.app("app").tail(10) == (["[cs-1] before", "[cs-3] after"], 2)
    assert again.app("app").since(1, wait_s=0) == (["[cs-3] after"], 2)
    assert again.app("other").tail(10)[0] == ["[cs-2] elsewhere"]
    again.close()


def test_the_file_turns_over_at_its_cap_and_keeps_one_before(tmp_path: Path) -> None:
    file = LogFile(tmp_path / "app.log", cap_bytes=200)
    for i in range(41):  # about 45 bytes each: a new file every 5 lines
        file.append(LogLine(1000.0 + i, f"line {i:02d} " + "x" * 20))
    file.close()
    assert 0 < file.path.stat().st_size < 200
    assert 200 <= file.previous.stat().st_size < 200 + 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", "app.log.1"]
    kept = [line.text[:7] for line in LogFile(tmp_path / "app.log").load(1000)]
    assert kept[-1] == "line 40" and kept == sorted(kept) and len(kept) < 15  # old ones went
    last = LogFile(tmp_path / "app.log").load(3)
    assert [line.text[:7] for line in last] == ["line 38", "line 39", "line 40"]
    assert last[-1].time == 1040.0


def test_a_line_cut_short_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text('[1.0, "whole"]\n[2.0, "cut sh')
    logs = AppLogs(file=LogFile(path))
    assert logs.tail(10) == (["whole"], 1)
    logs.append("next")
    logs.close()
    assert [line.text for line in LogFile(path).load(10)] == ["whole", "next"]


def test_a_file_that_cannot_be_written_leaves_the_lines_in_memory(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the directory should be")
    book = LogBook(echo=False, directory=tmp_path / "logs")
    book.write("app", "one")
    book.write("app", "two")
    assert book.app("app").tail(5) == (["one", "two"], 2)
    book.close()
