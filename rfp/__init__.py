"""rfp: rectified-flow fingerprints for scaling audio-identification benchmarks."""

__version__ = '0.1.0'
