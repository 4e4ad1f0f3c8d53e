"""The seccomp filter every container runs under: kernel interfaces it has no use for.

Dropping capabilities (nsinit.py) already takes mounts, modules, raw devices and
ptrace of others away. What a process without capabilities may still reach, and
a function has no need of, is refused here:

- new user namespaces (``unshare``/``clone`` with ``CLONE_NEWUSER``): inside
  one a process holds every capability again, over that namespace;
- the kernel keyring (``keyctl``, ``add_key``, ``request_key``), which is not
  namespaced: containers would share it with the host;
- ``bpf``, ``perf_event_open``, ``userfaultfd`` and ``io_uring``: large kernel
  attack surfaces.

``clone3`` answers ENOSYS: its flags sit in memory a filter can't read, and
glibc then falls back to ``clone``, whose flags it can. The server builds the
program (``program()``) and hands its bytes to nsinit, which installs it
(``nsinit.install_seccomp``) before it execs the runtime; CRIU saves and
restores it with the process.
x86-64 only, like the rest of the engine; another ABI is killed, not guessed at.
"""

from __future__ import annotations

import errno
import functools
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
CLONE_NEWUSER = 0x10000000

SYSCALLS = {
    "clone": 56, "unshare": 272, "clone3": 435,
    "keyctl": 250, "add_key": 248, "request_key": 249,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
}  # fmt: skip
# Refused outright, with the errno a caller sees.
DENIED = {
    "keyctl": errno.EPERM, "add_key": errno.EPERM, "request_key": errno.EPERM,
    "bpf": errno.EPERM, "perf_event_open": errno.EPERM, "userfaultfd": errno.EPERM,
    "io_uring_setup": errno.ENOSYS, "io_uring_enter": errno.ENOSYS,
    "io_uring_register": errno.ENOSYS, "clone3": errno.ENOSYS,
}  # fmt: skip
# Refused when their first argument (the flags) asks for a new user namespace.
NO_NEW_USERNS = ("clone", "unshare")

# Classic BPF, as seccomp reads it: struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}.
_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets; args[0]'s low word (little-endian)
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


@functools.cache
def program() -> bytes:
    """The filter as packed ``struct sock_filter`` entries (8 bytes each)."""
    insns = [
        _insn(_LD_W_ABS, _ARCH),
        _insn(_JEQ, AUDIT_ARCH_X86_64, jt=1),
        _insn(_RET, RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _NR),
        _insn(_JGE, X32_SYSCALL_BIT, jf=1),
        _insn(_RET, RET_ERRNO | errno.ENOSYS),
    ]
    for name, code in DENIED.items():
        insns += [_insn(_JEQ, SYSCALLS[name], jf=1), _insn(_RET, RET_ERRNO | code)]
    for name in NO_NEW_USERNS:
        # nr == name ? (flags & CLONE_NEWUSER ? EPERM : ALLOW) : next
        insns += [
            _insn(_JEQ, SYSCALLS[name], jf=4),
            _insn(_LD_W_ABS, _ARG0_LOW),
            _insn(_JSET, CLONE_NEWUSER, jf=1),
            _insn(_RET, RET_ERRNO | errno.EPERM),
            _insn(_RET, RET_ALLOW),
        ]
    insns.append(_insn(_RET, RET_ALLOW))
    return b"".join(struct.pack("<HBBI", *insn) for insn in insns)

