"""The bridge logic above the datapath: ports and ofport numbers, NORMAL switching
(MAC learning, VLANs, flooding), translation of packets into megaflows, and the
revalidator that keeps installed megaflows true. Pure decision logic: takes ``now`` as
an argument, never imports socket, asyncio or time; talks to the world only through the
``Datapath`` interface. Must not import config.ovsdb, daemon or handoff."""
