from common.db import run_migrations_online
from sharing_service.models import Base

run_migrations_online(Base.metadata)
