"""mediafleet whisper_transcriber capability."""
