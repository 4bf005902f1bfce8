"""The kinds of model inferbox's model server serves (no imports: the topology reads them too)."""

# Predictive models (KServe's V1 and V2 protocols).
PREDICTIVE_ARTIFACTS = ("iris", "iris-2", "digits")
# Generative models (KServe's OpenAI-compatible protocol): n-gram generators trained on shipped text.
GENERATIVE_ARTIFACTS = ("ngram-pydoc", "ngram-sklearn")
