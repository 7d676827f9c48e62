"""Face-track video features: detection (:mod:`.detect`), tracking (:mod:`.track`), active-speaker
selection (:mod:`.select`) and the ``video-facecrop`` extractor (:mod:`.extractor`)."""

from .detect import Box, FaceDetector, FallbackDetector, HaarFaceDetector, SkinBlobDetector, default_detector, describe_detector
from .extractor import FaceCropExtractor, extract_face_clips, frame_descriptor, read_clip
from .select import (BROW_EYE_REGION, MOUTH_REGION, SELECTOR_IDS, TRACK_SELECTORS, NamedTrackSelector, TrackSelector,
                     crop_region, default_lipsync_checkpoint, mouth_activity, mouth_motion, resolve_track_selector,
                     select_by_mouth_motion, selector_id)
from .track import FaceTrack, clip_box, grey_crops, track_faces, track_faces_sparse

__all__ = ["BROW_EYE_REGION", "Box", "FaceCropExtractor", "FaceDetector", "FaceTrack", "FallbackDetector",
           "HaarFaceDetector", "MOUTH_REGION", "NamedTrackSelector", "SELECTOR_IDS", "SkinBlobDetector",
           "TRACK_SELECTORS", "TrackSelector", "clip_box", "crop_region", "default_detector",
           "default_lipsync_checkpoint", "describe_detector", "extract_face_clips", "frame_descriptor", "grey_crops",
           "mouth_activity", "mouth_motion", "read_clip", "resolve_track_selector", "select_by_mouth_motion",
           "selector_id", "track_faces", "track_faces_sparse"]
