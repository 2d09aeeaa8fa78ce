"""Training the shipped networks: data sets, episodic pre-training, MSD extractors."""
