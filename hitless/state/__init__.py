"""The state layer: the learned state a handoff carries, typed once.

- ``records``: the msgspec records of every state format version (ports, MAC entries,
  megaflows, OpenFlow rules, groups, meters, the datapath's handles, deltas) and the
  current version's names.
- ``handles``: the datapath handles, one record per datapath type (dummy, netdev, ebpf)
  with the meters' bucket levels, and their released wire form.
- ``snapshot``: the version table, the migrations up and down between versions, and
  the codec (an ``Envelope`` with magic, version, writer and checksum around a payload).
- ``ledger``: the digests both sides of a handoff compute (the full state's, and the
  ``Ledger`` that follows a pre-copy and its delta item by item).
- ``parts``: big msgpack values built in pieces (a pre-copy encoded slice by slice).

Pure: no I/O, no clock. Must not import the daemon, the handoff protocol or any layer
(ofproto, datapath, openflow): the layers and the daemon import this package.
"""
