"""media_metadata settings (prefix ``MEDIA_METADATA_``)."""

from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings


class MediaMetadataSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_METADATA_")

    http_port: int = 8116
