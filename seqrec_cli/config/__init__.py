"""Configuration: the dataclass schemas (`schema`), their value checks (`checks`), the one conversion
from a Hydra composition to checked dataclasses (`convert`), the eval / recommend command schemas
(`apps`), and what Hydra needs from us (`registry`: config path, structured schema, resolvers).

Import names from the submodule that owns them; this package re-exports nothing, so importing a
schema never loads Hydra.
"""
