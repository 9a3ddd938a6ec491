"""The disk side of receiving: the one file writer, and what the disk has room for.

Peer transfers (``transfer.intake``), browser uploads (``share.upload``), files
dropped into the app (``app.files``) and, later, LocalSend write received files
only through ``TargetFolder`` (files that may resume, in folders) or
``UploadFile`` (one file arriving whole). This
package imports neither iroh nor ``p2p_transfer.transfer``/``net``, so the share
server stays light.

What a session must call: ``TargetFolder.sync()`` once its files are finished
and before it reports the transfer done (``UploadFile.finish`` does it itself).
"""

from p2p_transfer.disk.errors import NameTakenError, TargetError, describe_os_error
from p2p_transfer.disk.space import free_inodes, free_space
from p2p_transfer.disk.target import PartFile, ResumePoint, TargetFolder, WholeFile
from p2p_transfer.disk.upload import UploadFile

__all__ = [
    "NameTakenError",
    "PartFile",
    "ResumePoint",
    "TargetError",
    "TargetFolder",
    "UploadFile",
    "WholeFile",
    "describe_os_error",
    "free_inodes",
    "free_space",
]
