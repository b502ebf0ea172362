"""Wiring of the sharing service: settings, database, auth and event clients, the audit
consumer, gRPC server."""

from common.db import make_sessionmaker
from common.wiring import Wiring, run_process
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.audit import AuditConsumer
from sharing_service.config import SharingSettings
from sharing_service.events import EventAccessClient
from sharing_service.freebusy import FreeBusyService
from sharing_service.service import SharingService
from sharing_service.servicer import SharingServicer
from sharing_service.users import UserDirectory


async def run(wiring: Wiring[SharingSettings]) -> None:
    settings = wiring.settings
    engine = wiring.engine()
    auth_channel = wiring.channel(settings.auth_addr)
    # Access changes and busy times go through the event service as the sharing service
    # (it owns the sharing rules and decides whose free/busy a caller sees).
    events_channel = wiring.channel(settings.events_addr, wiring.service_tokens("sharing"))
    verifier = wiring.user_verifier()
    sessions = make_sessionmaker(engine)
    events = EventAccessClient(events_channel)
    lookup_users = UserDirectory(auth_channel).lookup
    service = SharingService(events, lookup_users)
    freebusy = FreeBusyService(sessions, events, lookup_users)
    audit = AuditConsumer(settings, sessions)
    auditing = audit.start()
    wiring.on_stop(audit.close)
    wiring.on_stop(lambda: audit.stop(auditing))

    await wiring.serve(
        sharing_pb2,
        "SharingService",
        sharing_pb2_grpc.add_SharingServiceServicer_to_server,
        SharingServicer(service, freebusy),
        verifier,
    )


def main() -> None:
    run_process("sharing_service", SharingSettings, run)
