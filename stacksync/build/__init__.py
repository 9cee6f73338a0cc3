"""Deferred-package wheels: build keys, the wheelhouse, prebuilt wheels, publishing to a team index."""
