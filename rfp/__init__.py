"""rfp: rectified-flow fingerprints for scaling audio-identification benchmarks."""
