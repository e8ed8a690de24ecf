from fastapi import APIRouter

from services.api.problems import V1_RESPONSES

router = APIRouter(prefix="/customers", tags=["customers"], responses=V1_RESPONSES)
