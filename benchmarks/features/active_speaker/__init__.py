"""Active-speaker selection for the face-crop video extractor (``select_track: lipsync``).

A lip-sync network (LipSyncNet, ``lipsync.py``) scores how well each face track's mouth
matches the audio; ``selector.py`` picks the best-matching track (``LipSyncSelector``) or a
random one (``RandomSelector``, the "without lip-sync" ablation); ``train_lipsync.py`` trains
the network. It serves any method that reads ``video-facecrop`` features; the LipSync graph
ERC method (methods/lipsync_graph_erc) is the paper it comes from.
"""
