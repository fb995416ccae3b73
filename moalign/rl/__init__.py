"""rl: rewards, advantage estimators, reward-weighting strategies and the trainer."""
