"""Feature extractors (text, audio, video) and their on-disk cache.

Add an extractor: subclass :class:`merbench.interfaces.FeatureExtractor` in a module
here and add its name to ``BUILTIN_FEATURES`` (lazy, so torch models load only when used).
"""

BUILTIN_FEATURES = {
    "text-minilm": "merbench.features.text:MiniLMTextExtractor",
    "text-hf": "merbench.features.text:HFTextExtractor",
    "audio-egemaps": "merbench.features.audio:EGeMAPSExtractor",
    "audio-compare": "merbench.features.audio:ComParE2016Extractor",
    "video-facecrop": "merbench.features.video:FaceCropExtractor",
    "audio-hf": "merbench.features.speech_hf:HFSpeechExtractor",
    "audio-logmel": "merbench.features.logmel:LogMelExtractor",
    "audio-emotion2vec": "merbench.features.emotion2vec:Emotion2VecExtractor",
    "video-hf": "merbench.features.vision_hf:HFVisionExtractor",
    "text-context": "merbench.features.text_context:TextContextExtractor",
    # features computed elsewhere, read from files (merbench.features.packs)
    "text-pack": "merbench.features.packs.extractor:TextPack",
    "audio-pack": "merbench.features.packs.extractor:AudioPack",
    "video-pack": "merbench.features.packs.extractor:VideoPack",
}
