"""A seccomp filter for containers' code, in the classic BPF bubblewrap loads with `--seccomp FD`.

It denies what code in a notebook has no use for and what sandbox escapes are made of, much as container
runtimes' default profiles do: new namespaces (unshare, setns, clone with CLONE_NEW*), ptrace and reading other
processes' memory, mounts, kernel modules, kexec, keyrings, bpf, perf events, userfaultfd, io_uring, and changing
the host's clock or name. Everything else is allowed. `clone3` answers ENOSYS (its flags can't be inspected from
a filter), so the C library falls back to `clone`, whose flags can. Syscalls of another ABI (32-bit `int 0x80`,
x32) are denied outright.

Only x86_64 and aarch64 are described; elsewhere `program()` returns None and the server says the filter is not
enforced.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# struct seccomp_data: nr (u32) at 0, arch (u32) at 4, instruction pointer (u64) at 8, args (6 x u64) from 16.
_NR, _ARCH, _ARG0 = 0, 4, 16
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000

CLONE_NEW_FLAGS = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

_DENIED = {
    # name: (x86_64, aarch64)
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "acct": (163, 89),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "clock_adjtime": (305, 266),
    "adjtimex": (159, 171),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "vhangup": (153, 58),
    "fanotify_init": (300, 262),
}
_CLONE = (56, 220)
_CLONE3 = (435, 435)
_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture, or None where it isn't described."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    column, audit_arch = arch
    deny = _RET_K, 0, 0, _ERRNO | errno.EPERM
    nosys = _RET_K, 0, 0, _ERRNO | errno.ENOSYS
    body: list[tuple[int, int, int, int]] = []
    for nr in sorted({numbers[column] for numbers in _DENIED.values()}):
        body += [(_JEQ_K, 0, 1, nr), deny]
    body += [(_JEQ_K, 0, 1, _CLONE3[column]), nosys]
    # clone: allowed unless it asks for a new namespace (its flags are the low half of the first argument).
    body += [(_JEQ_K, 0, 3, _CLONE[column]), (_LD_W_ABS, 0, 0, _ARG0), (_JSET_K, 0, 1, CLONE_NEW_FLAGS), deny]
    body += [(_RET_K, 0, 0, _ALLOW)]
    head = [(_LD_W_ABS, 0, 0, _ARCH), (_JEQ_K, 1, 0, audit_arch), deny, (_LD_W_ABS, 0, 0, _NR)]
    if column == 0:  # x32 syscalls share the x86_64 arch value and set this bit of the number
        head += [(_JSET_K, 0, 1, _X32_BIT), deny]
    return b"".join(_insn(*i) for i in [*head, *body])


def descriptor(filter_program: bytes) -> int:
    """A readable descriptor of the program, at its start, for bwrap's `--seccomp FD`."""
    fd = os.memfd_create("cellbox-seccomp", os.MFD_CLOEXEC)
    os.write(fd, filter_program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
