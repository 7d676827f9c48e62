"""LipSync graph ERC (Li, Funakoshi, Okumura, Findings of EACL 2026): the lip-sync network and
active-speaker selection (lipsync.py, train_lipsync.py, active_speaker.py), and the graph /
fusion emotion classifier registered as method ``lipsync_graph_erc`` (graph.py, model.py, method.py)."""
