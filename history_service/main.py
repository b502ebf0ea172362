"""Wiring of the history service: settings, database, clients, consumer, gRPC server."""

from common.db import make_sessionmaker
from common.wiring import Wiring, run_process
from eventhub.history.v1 import history_pb2, history_pb2_grpc
from history_service.config import HistorySettings
from history_service.consumer import ChangeConsumer
from history_service.events import EventClient
from history_service.notifier import VersionNotifier
from history_service.service import HistoryService
from history_service.servicer import HistoryServicer


async def run(wiring: Wiring[HistorySettings]) -> None:
    settings = wiring.settings
    sessions = make_sessionmaker(wiring.engine())
    # Rollbacks go through the event service as the history service (they supply content).
    events = EventClient(wiring.channel(settings.events_addr, wiring.service_tokens("history")))
    verifier = wiring.user_verifier()
    notifier = VersionNotifier()
    service = HistoryService(settings, sessions, events, notifier)
    consumer = ChangeConsumer(settings, sessions, notifier)
    consuming = consumer.start()
    wiring.on_stop(consumer.close)
    wiring.on_stop(lambda: consumer.stop(consuming))

    await wiring.serve(
        history_pb2,
        "HistoryService",
        history_pb2_grpc.add_HistoryServiceServicer_to_server,
        HistoryServicer(service),
        verifier,
    )


def main() -> None:
    run_process("history_service", HistorySettings, run)
