"""Developer tools (training, student copies, the stability harness); not installed with the course."""
