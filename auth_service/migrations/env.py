from auth_service.models import Base
from common.db import run_migrations_online

run_migrations_online(Base.metadata)
