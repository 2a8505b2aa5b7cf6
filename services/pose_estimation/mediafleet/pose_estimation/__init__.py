"""mediafleet pose_estimation capability."""
