from common.db import run_migrations_online
from event_service.models import Base

run_migrations_online(Base.metadata)
