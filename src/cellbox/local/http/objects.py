"""The JSON shapes of containers, container files, files and lists, as the cloud answers them."""

from __future__ import annotations

from collections.abc import Callable

from ..store import Page, safepath


def container_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "container",
        "name": row["name"],
        "created_at": row["created_at"],
        "status": row["status"],
        "last_active_at": int(row["last_active"]),
        "expires_after": {"anchor": "last_active_at", "minutes": row["expires_minutes"]},
        "memory_limit": row["memory_limit"],
        "network_policy": {"type": "disabled"},
    }


def container_file_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "container.file",
        "container_id": row["container_id"],
        "created_at": row["created_at"],
        "bytes": row["bytes"],
        "path": f"{safepath.MOUNT}/{row['path']}",
        "source": row["source"],
    }


def file_json(row: dict) -> dict:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "expires_at": row.get("expires_at"),
        "status_details": None,
    }


def page_json(page: Page, shape: Callable[[dict], dict]) -> dict:
    data = [shape(row) for row in page.rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": page.has_more,
    }
