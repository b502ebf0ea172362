from common.config import CommonSettings, listen_port


class SharingSettings(CommonSettings):
    @property
    def grpc_port(self) -> int:
        return listen_port(self.sharing_addr)
