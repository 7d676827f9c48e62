"""Active-speaker selection for the face-crop video extractor (``select_track: lipsync``).

A lip-sync network (LipSyncNet, ``lipsync.py``) scores how well each face track's mouth
matches the audio; ``selector.py`` picks the best-matching track (``LipSyncSelector``) or a
random one (``RandomSelector``, the "without lip-sync" ablation). Training is split into data
preparation (``data.py``), training (``train.py``), evaluation (``evaluate.py``) and the command
line (``train_lipsync.py``: ``python -m merbench.features.active_speaker.train_lipsync``).
It serves any method that reads ``video-facecrop`` features; the LipSync graph ERC method
(methods/lipsync_graph_erc) is the paper it comes from.
"""
