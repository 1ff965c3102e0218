"""The results flow: what learners achieve, back to their partner."""
