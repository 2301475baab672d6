"""moto, the AWS emulator, with what it lacks or gets wrong that Windlass meets (these
parts are stand-ins, not AWS).

moto 5.2 creates EKS clusters and node groups but cannot upgrade them, and answers every
cluster with a made-up endpoint and certificate authority. This launcher adds, on moto's
own backends and routes, what the AWS API references document:

- UpdateClusterVersion (POST /clusters/{name}/updates): one minor version at a time,
  refused while another update runs (ResourceInUseException) or for any other step
  (InvalidParameterException); the cluster is UPDATING until the update's clock ends.
- UpdateNodegroupVersion (POST /clusters/{name}/node-groups/{ng}/update-version): never
  past the control plane's version.
- DescribeUpdate and ListUpdates, for both.
- Presigned requests (SigV4 in the query string, as in an EKS token's GetCallerIdentity)
  reach the service their credential scope names, made as the signer's access key, as
  AWS does; moto 5.2 reads both from the Authorization header only, so it answered them
  as S3 and its default user.
- Deleting an object in a bucket whose versioning was suspended, when the key has delete
  markers (terraform's destroy of `aws_s3_bucket_versioning` suspends it; the state
  lock is deleted after): moto 5.2 fails with HTTP 500 disposing a delete marker.
- CreateOpenIDConnectProvider of an existing provider says which, as IAM does
  ("Provider with url <url> already exists."); moto 5.2 says "Unknown".
- Elastic IPs in the Resource Groups Tagging API (`ec2:elastic-ip`), as AWS lists them;
  moto 5.2 leaves them out.
- A cluster's endpoint and certificate authority: the Kubernetes stand-in's, when
  WINDLASS_MOTO_EKS_ENDPOINT and WINDLASS_MOTO_EKS_CA_DATA (base64 PEM, as EKS answers it)
  are set, so a kubeconfig built from DescribeCluster reaches a working API server.

- Creation that takes time: with WINDLASS_MOTO_CREATE_SECONDS, EKS clusters and node
  groups are CREATING and NAT gateways `pending` for that long (real AWS: minutes), as
  clients must wait for them; moto makes them ACTIVE and `available` at once.

WINDLASS_MOTO_EKS_UPDATE_SECONDS is how long an update takes (real EKS: minutes; 1 here).
Then moto's own server runs with the arguments given.
"""

import datetime
import os
import sys
import uuid

from moto.eks import models, responses, urls
from moto.eks.exceptions import (
    InvalidParameterException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.core import responses as core_responses
from moto.core.responses import ActionResult

UPDATE_SECONDS = float(os.environ.get("WINDLASS_MOTO_EKS_UPDATE_SECONDS", "1"))
CREATE_SECONDS = float(os.environ.get("WINDLASS_MOTO_CREATE_SECONDS", "0"))
ENDPOINT = os.environ.get("WINDLASS_MOTO_EKS_ENDPOINT")
CA_DATA = os.environ.get("WINDLASS_MOTO_EKS_CA_DATA")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _minor(version):
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _not_found(cluster, nodegroup=None):
    what = f"No node group found for name: {nodegroup}." if nodegroup else f"No cluster found for name: {cluster}."
    return ResourceNotFoundException(
        clusterName=cluster,
        nodegroupName=nodegroup,
        fargateProfileName=None,
        addonName=None,
        message=what,
    )


def _invalid(cluster, nodegroup, message):
    return InvalidParameterException(
        clusterName=cluster,
        nodegroupName=nodegroup,
        fargateProfileName=None,
        addonName=None,
        message=message,
    )


def _in_use(cluster, nodegroup, message):
    return ResourceInUseException(
        clusterName=cluster,
        nodegroupName=nodegroup,
        addonName=None,
        message=message,
    )


class _Update:
    """One version update: InProgress until its clock ends, then applied and Successful."""

    def __init__(self, target, version, params):
        self.id = str(uuid.uuid4())
        self.target = target
        self.version = version
        self.created_at = _now()
        self.done_at = self.created_at + datetime.timedelta(seconds=UPDATE_SECONDS)
        self.status = "InProgress"
        self.params = params

    def settle(self):
        if self.status == "InProgress" and _now() >= self.done_at:
            self.target.version = self.version
            if hasattr(self.target, "platformVersion"):
                self.target.platformVersion = "eks.1"
            self.target.status = "ACTIVE"
            self.status = "Successful"

    def shape(self):
        return {
            "id": self.id,
            "status": self.status,
            "type": "VersionUpdate",
            "params": self.params,
            "createdAt": self.created_at,
            "errors": [],
        }


def _creating(target, status):
    """Marks a new resource `status` until the creation clock ends."""
    if CREATE_SECONDS > 0:
        target.windlass_created_status = target.status
        target.windlass_ready_at = _now() + datetime.timedelta(seconds=CREATE_SECONDS)
        target.status = status


def _updates(target):
    ready_at = getattr(target, "windlass_ready_at", None)
    if ready_at is not None and _now() >= ready_at:
        target.status = target.windlass_created_status
        target.windlass_ready_at = None
    if not hasattr(target, "windlass_updates"):
        target.windlass_updates = []
    for update in target.windlass_updates:
        update.settle()
    return target.windlass_updates


def _in_progress(target):
    return any(u.status == "InProgress" for u in _updates(target))


def _cluster(backend, name):
    cluster = backend.clusters.get(name)
    if cluster is None:
        raise _not_found(name)
    _updates(cluster)
    for group in cluster.nodegroups.values():
        _updates(group)
    return cluster


def update_cluster_version(self, name, version):
    cluster = _cluster(self, name)
    if _in_progress(cluster) or cluster.status != "ACTIVE":
        raise _in_use(name, None, f"Cluster is in {cluster.status} state; an update is in progress.")
    have, want = _minor(cluster.version), _minor(version)
    if want != (have[0], have[1] + 1):
        raise _invalid(
            name, None, f"Unsupported Kubernetes minor version update from {cluster.version} to {version}"
        )
    update = _Update(
        cluster,
        version,
        [{"type": "Version", "value": version}, {"type": "PlatformVersion", "value": "eks.1"}],
    )
    cluster.windlass_updates.append(update)
    cluster.status = "UPDATING"
    return update


def update_nodegroup_version(self, cluster_name, nodegroup_name, version):
    cluster = _cluster(self, cluster_name)
    group = cluster.nodegroups.get(nodegroup_name)
    if group is None:
        raise _not_found(cluster_name, nodegroup_name)
    if _in_progress(cluster):
        raise _in_use(cluster_name, nodegroup_name, "The cluster has an update in progress.")
    if _in_progress(group) or group.status != "ACTIVE":
        raise _in_use(cluster_name, nodegroup_name, f"Nodegroup is in {group.status} state.")
    version = version or cluster.version
    if _minor(version) > _minor(cluster.version):
        raise _invalid(
            cluster_name,
            nodegroup_name,
            f"Requested Nodegroup Kubernetes version {version} is greater than cluster version {cluster.version}",
        )
    update = _Update(
        group,
        version,
        [{"type": "Version", "value": version}, {"type": "ReleaseVersion", "value": group.release_version}],
    )
    group.windlass_updates.append(update)
    group.status = "UPDATING"
    return update


def describe_update(self, name, update_id, nodegroup_name=None):
    cluster = _cluster(self, name)
    target = cluster
    if nodegroup_name:
        target = cluster.nodegroups.get(nodegroup_name)
        if target is None:
            raise _not_found(name, nodegroup_name)
    for update in _updates(target):
        if update.id == update_id:
            return update
    raise ResourceNotFoundException(
        clusterName=name,
        nodegroupName=nodegroup_name,
        fargateProfileName=None,
        addonName=None,
        message=f"No update found for ID: {update_id}.",
    )


def list_updates(self, name, nodegroup_name=None):
    cluster = _cluster(self, name)
    target = cluster.nodegroups.get(nodegroup_name) if nodegroup_name else cluster
    if target is None:
        raise _not_found(name, nodegroup_name)
    return [u.id for u in _updates(target)]


def _settling(original):
    def wrapped(self, *args, **kwargs):
        for cluster in self.clusters.values():
            _updates(cluster)
            for group in cluster.nodegroups.values():
                _updates(group)
        return original(self, *args, **kwargs)

    return wrapped


models.EKSBackend.update_cluster_version = update_cluster_version
models.EKSBackend.update_nodegroup_version = update_nodegroup_version
models.EKSBackend.describe_update = describe_update
models.EKSBackend.list_updates = list_updates
for _name in ("describe_cluster", "describe_nodegroup", "delete_cluster", "delete_nodegroup"):
    setattr(models.EKSBackend, _name, _settling(getattr(models.EKSBackend, _name)))

_original_cluster_init = models.Cluster.__init__


def _cluster_init(self, *args, **kwargs):
    _original_cluster_init(self, *args, **kwargs)
    _creating(self, "CREATING")
    if ENDPOINT:
        self.endpoint = ENDPOINT
    if CA_DATA:
        self.certificate_authority = {"data": CA_DATA}


models.Cluster.__init__ = _cluster_init

_original_nodegroup_init = models.Nodegroup.__init__


def _nodegroup_init(self, *args, **kwargs):
    _original_nodegroup_init(self, *args, **kwargs)
    _creating(self, "CREATING")


models.Nodegroup.__init__ = _nodegroup_init


def _response_update_cluster_version(self):
    update = self.eks_backend.update_cluster_version(
        name=self._get_param("name"), version=self._get_param("version")
    )
    return ActionResult({"update": update.shape()})


def _response_update_nodegroup_version(self):
    update = self.eks_backend.update_nodegroup_version(
        cluster_name=self._get_param("name"),
        nodegroup_name=self._get_param("nodegroupName"),
        version=self._get_param("version"),
    )
    return ActionResult({"update": update.shape()})


def _response_describe_update(self):
    update = self.eks_backend.describe_update(
        name=self._get_param("name"),
        update_id=self._get_param("updateId"),
        nodegroup_name=self._get_param("nodegroupName"),
    )
    return ActionResult({"update": update.shape()})


def _response_list_updates(self):
    ids = self.eks_backend.list_updates(
        name=self._get_param("name"), nodegroup_name=self._get_param("nodegroupName")
    )
    return ActionResult({"updateIds": ids})


responses.EKSResponse.update_cluster_version = _response_update_cluster_version
responses.EKSResponse.update_nodegroup_version = _response_update_nodegroup_version
responses.EKSResponse.describe_update = _response_describe_update
responses.EKSResponse.list_updates = _response_list_updates

urls.url_paths.update(
    {
        "{0}/clusters/(?P<name>[^/]+)/updates$": urls.response.dispatch,
        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$": urls.response.dispatch,
        "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$": urls.response.dispatch,
    }
)

_original_get_access_key = core_responses.BaseResponse.get_access_key


def _get_access_key(self):
    presigned = self.querystring.get("X-Amz-Credential")
    if "Authorization" not in self.headers and presigned:
        return presigned[0].split("/")[0]
    return _original_get_access_key(self)


core_responses.BaseResponse.get_access_key = _get_access_key

from urllib.parse import parse_qs  # noqa: E402

from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402

_original_infer = DomainDispatcherApplication.infer_service_region_host


def _infer_service_region_host(self, environ, path):
    if not environ.get("HTTP_AUTHORIZATION"):
        credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
        if credential:
            # Only for telling the service: the request itself is left as it came.
            environ = dict(environ)
            environ["HTTP_AUTHORIZATION"] = (
                f"AWS4-HMAC-SHA256 Credential={credential[0]}, SignedHeaders=host, Signature=0"
            )
    return _original_infer(self, environ, path)


DomainDispatcherApplication.infer_service_region_host = _infer_service_region_host

from moto.ec2.models import EC2Backend  # noqa: E402
from moto.core.resource_tagging import TaggedResource  # noqa: E402

_original_iter_tagged = EC2Backend.iter_tagged_resources


def _iter_tagged_resources(self):
    yield from _original_iter_tagged(self)
    for address in self.addresses:
        allocation = getattr(address, "allocation_id", None)
        if allocation:
            yield TaggedResource(
                arn=f"arn:{self.partition}:ec2:{self.region_name}:{self.account_id}:elastic-ip/{allocation}",
                tags=dict(self.tags.get(allocation, {})),
                resource_type="ec2:elastic-ip",
            )


EC2Backend.iter_tagged_resources = _iter_tagged_resources

from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend  # noqa: E402

_original_nat_init = NatGateway.__init__


def _nat_init(self, *args, **kwargs):
    _original_nat_init(self, *args, **kwargs)
    if CREATE_SECONDS > 0:
        self.state = "pending"
        self.windlass_ready_at = _now() + datetime.timedelta(seconds=CREATE_SECONDS)


NatGateway.__init__ = _nat_init
_original_describe_nat = NatGatewayBackend.describe_nat_gateways


def _describe_nat_gateways(self, *args, **kwargs):
    for gateway in self.nat_gateways.values():
        ready_at = getattr(gateway, "windlass_ready_at", None)
        if ready_at is not None and gateway.state == "pending" and _now() >= ready_at:
            gateway.state = "available"
            gateway.windlass_ready_at = None
    return _original_describe_nat(self, *args, **kwargs)


NatGatewayBackend.describe_nat_gateways = _describe_nat_gateways

from moto.iam.exceptions import EntityAlreadyExists  # noqa: E402
from moto.iam.models import IAMBackend  # noqa: E402

_original_create_oidc = IAMBackend.create_open_id_connect_provider


def _create_open_id_connect_provider(self, url, *args, **kwargs):
    try:
        return _original_create_oidc(self, url, *args, **kwargs)
    except EntityAlreadyExists:
        raise EntityAlreadyExists(f"Provider with url {url} already exists.")


IAMBackend.create_open_id_connect_provider = _create_open_id_connect_provider

from moto.s3.models import FakeDeleteMarker  # noqa: E402

if not hasattr(FakeDeleteMarker, "dispose"):
    # A delete marker holds no content to release.
    FakeDeleteMarker.dispose = lambda self, garbage=False: None

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
