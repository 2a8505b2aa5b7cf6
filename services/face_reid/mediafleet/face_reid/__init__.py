"""mediafleet face_reid capability."""
