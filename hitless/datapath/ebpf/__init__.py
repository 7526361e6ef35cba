"""The ebpf datapath: a tc-BPF program per bridge forwards by megaflows in the kernel,
keeps forwarding while no daemon runs, and is adopted by the next daemon.

Owns the BPF C source (``bpf/``), its build (``build``), the ctypes libbpf binding
(``libbpf``), the layouts shared with the program (``layout``), the ring buffer reader
(``ringbuf``) and the provider (``provider.EbpfDatapath``, registered as "ebpf" in
hitless.datapath.registry; imported lazily, so that ``python -m
hitless.datapath.ebpf.build`` works before anything is loaded). Must not import
ofproto, config, daemon or handoff.
"""
