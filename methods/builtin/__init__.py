"""The built-in W2S methods. Importing this package registers them (``@register_method``)."""
from methods.builtin import (  # noqa: F401  (imported for registration)
    aux_conf,
    bootstrap,
    em_posterior,
    external,
    simple,
    zero_shot,
)
