"""LipSync graph ERC (Li, Funakoshi, Okumura, Findings of EACL 2026): first part, the
lip-sync network and active-speaker selection. The graph/fusion classifier is not here yet."""
