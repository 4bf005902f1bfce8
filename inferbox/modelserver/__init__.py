"""inferbox's model server: KServe's Python ModelServer serving models trained from scikit-learn's
bundled datasets (no download). Used for every model replica on the embedded target and, as a
locally built image, for the custom-container model on Kind."""
