"""A sandbox's streams and files through a real server: output in order and whole,
stdin, line-by-line answers, ``sb.open``; the helpers are test_sandboxes.py's."""

from __future__ import annotations

from tests.conftest import ServerHandle
from tests.server.test_sandboxes import _run, srv

__all__ = ["srv"]  # the module's server fixture, shared by name


def test_stdout_streams_lines_in_order_as_they_come(srv: ServerHandle) -> None:
    lines = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("sh", "-c", "for i in 1 2 3 4; do echo line $i; sleep 0.5; done")
        result = [(line, time.monotonic()) for line in p.stdout]
        sb.terminate()
    """)
    assert [line for line, _ in lines] == [f"line {i}\n" for i in range(1, 5)]
    # The first line arrived while the process still ran (it runs ~2 s in all).
    assert lines[-1][1] - lines[0][1] > 1.0, lines


def test_stdin_round_trip_and_bytes_mode(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("cat", text=False)
        p.stdin.write(b"first\\n")
        p.stdin.write("second\\n")
        p.stdin.drain()
        p.stdin.write_eof()
        out = p.stdout.read()
        result = [type(out).__name__, out.decode(), p.wait()]
        sb.terminate()
    """)
    assert result == ["bytes", "first\nsecond\n", 0]


def test_an_interactive_process_answers_line_by_line(srv: ServerHandle) -> None:
    """Modal's code-interpreter pattern: write a line to stdin, take the next line of
    stdout with a fresh ``next(iter(p.stdout))`` each time; nothing read is lost."""
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("python3", "-u", "-c",
                    "import sys\\nfor line in sys.stdin:\\n    print(line.strip() * 2)\\n"
                    "    print('extra')")
        answers = []
        for word in ("a", "b", "c"):
            p.stdin.write(word + "\\n")
            p.stdin.drain()
            answers.append(next(iter(p.stdout)))
        p.stdin.write_eof()
        result = [answers, p.stdout.read(), p.wait()]
        sb.terminate()
    """)
    assert result == [["aa\n", "extra\n", "bb\n"], "extra\ncc\nextra\n", 0]


def test_modal_module_names_for_annotations() -> None:
    import coldsnap

    assert coldsnap.container_process.ContainerProcess.__name__ == "ContainerProcess"
    assert {"StreamReader", "StreamWriter"} <= set(dir(coldsnap.io_streams))


def test_files_api(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app)
        sb.mkdir("/work/sub", parents=True)
        with sb.open("/work/sub/notes.txt", "w") as f:
            f.write("line one\\n")
            f.write("line two\\n")
        with sb.open("/work/sub/notes.txt", "a") as f:
            f.write("line three\\n")
        f = sb.open("/work/sub/notes.txt")
        first = f.readline()
        rest = f.read()
        f.close()
        raw = sb.open("/work/sub/notes.txt", "rb").read()
        seen = sb.exec("wc", "-l", "/work/sub/notes.txt").stdout.read().split()[0]
        listed = sb.ls("/work/sub")
        sb.rm("/work/sub", recursive=True)
        try:
            sb.open("/work/sub/notes.txt")
            missing = "no error"
        except Exception as exc:
            missing = f"{type(exc).__name__}: {exc}"
        result = [first, rest, raw.decode(), seen, listed, missing]
        sb.terminate()
    """)
    assert result[:5] == ["line one\n", "line two\nline three\n",
                          "line one\nline two\nline three\n", "3", ["notes.txt"]]
    assert "No such file or directory" in result[5], result[5]


def test_large_output_arrives_whole(srv: ServerHandle) -> None:
    """More output than one read answers with (MAX_READ) comes in several, in order."""
    result = _run(srv, """
        import hashlib
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("python3", "-c", "import sys\\nfor i in range(600000): "
                    "sys.stdout.write(f'{i:09d}\\\\n')")
        out = p.stdout.read()
        result = [len(out), out.splitlines()[-1], p.wait()]
        sb.terminate()
    """)
    assert result == [6_000_000, "000599999", 0]
