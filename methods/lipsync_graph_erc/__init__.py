"""LipSync graph ERC (Li, Funakoshi, Okumura, Findings of EACL 2026): the graph / fusion emotion
classifier registered as method ``lipsync_graph_erc`` (graph.py, model.py, method.py). Its
lip-sync network and active-speaker selection serve the ``video-facecrop`` extractor and live
with it: ``merbench.features.active_speaker``."""
