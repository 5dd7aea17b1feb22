"""Training: the multi-information loss, teacher labels and their cache, the data module over
the AFLW crops, the Lightning system and the run launcher."""
