"""Steering connections by client address (``processes_spread = "address"``, Linux only).

A classic BPF program attached to the processes' ``SO_REUSEPORT`` group picks the socket
for each new connection: the client's IP address (the last 32 bits of an IPv6 one), folded
(high half XOR low half) and taken modulo the number of processes. Every connection from
one address reaches the same process while the group is unchanged, so the state of stateful
detection (correlation windows, session rules) sees all that address sends. When the
program names a socket the group does not have (a process is being replaced), the kernel
falls back to its own hash.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h; the socket module has no name for it
SKF_NET_OFF = -0x100000  # loads relative to the network (IP) header
# classic BPF opcodes (linux/filter.h)
LD, LDB, LDW, ABS = 0x00, 0x10, 0x00, 0x20
ALU, RSH, XOR, MOD, K, X = 0x04, 0x70, 0xA0, 0x90, 0x00, 0x08
JMP, JA, JEQ = 0x05, 0x00, 0x10
RET, A = 0x06, 0x10
TAX = 0x07 | 0x00  # BPF_MISC | BPF_TAX


def _net(offset: int) -> int:
    return (SKF_NET_OFF + offset) & 0xFFFFFFFF


def program(processes: int) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) of each instruction."""
    return [
        (LD | LDB | ABS, 0, 0, _net(0)),  # A = the IP header's first byte
        (ALU | RSH | K, 0, 0, 4),  # A = the IP version
        (JMP | JEQ | K, 2, 0, 6),  # IPv6: to the load of its address
        (LD | LDW | ABS, 0, 0, _net(12)),  # A = the IPv4 source address
        (JMP | JA, 0, 0, 1),
        (LD | LDW | ABS, 0, 0, _net(20)),  # A = the IPv6 source address's last 32 bits
        (TAX, 0, 0, 0),
        (ALU | RSH | K, 0, 0, 16),
        (ALU | XOR | X, 0, 0, 0),  # A = address ^ (address >> 16)
        (ALU | MOD | K, 0, 0, processes),
        (RET | A, 0, 0, 0),
    ]


def steer_by_address(sock: socket.socket, processes: int) -> None:
    """Attach the program to ``sock``'s reuseport group (``sock`` must be listening)."""
    code = b"".join(struct.pack("HBBI", *ins) for ins in program(processes))
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
