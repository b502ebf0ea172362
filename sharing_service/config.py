from common.config import CommonSettings, listen_port


class SharingSettings(CommonSettings):
    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.sharing_addr)
