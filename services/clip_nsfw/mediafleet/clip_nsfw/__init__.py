"""mediafleet clip_nsfw capability."""
