"""The embedded AWS endpoint: moto's server with the patches that make it behave like CloudFormation.

Run as `python -m copilot_doit.targets.local.moto_server -H 127.0.0.1 -p PORT` (started by `services.py`).
The patches depend on moto internals, hence the pin `moto[server]==5.2.1` in pyproject.toml; each one
has a test in tests/test_local_moto_patches.py that fails without it. Numbers refer to
research/feasibility.md §1.b.6; patch 5 is ours (stack tags through change sets), and so are patch 7
(held stack operations and CancelUpdateStack, for Ctrl-C tests), patch 8 (updates of resources moto
cannot update in place no longer break DescribeStackResource), patch 9 (a load balancer's `Type` from
CloudFormation: network load balancers with TCP/UDP listeners), patch 10 (a stack with a VPC and an
internet gateway can be deleted), patch 11 (a failed update rolls back; nested stacks are updated in
place, and one that fails to create or update leaves no half-made stack behind), patch 12 (an output
whose condition is false is left out), patch 13 (a deleted stack takes its load balancer listeners,
listener rules and target groups along), patch 14 (DescribeStacks evaluates a stack's exports once, not once
per output: half of its time) and patch 15 (each resource a stack operation creates or updates has its own
`*_IN_PROGRESS` and `*_COMPLETE` events, as CloudFormation's: the live view draws them) and patch 16
(`GET /copilot-doit/ecr-images`: every emulated ECR image digest of an account and region in one answer)
and patch 17 (one request at a time: moto's models are not thread-safe, its server is threaded), patch 18
(per-request costs that emulate nothing) and patch 19 (`GET /copilot-doit/stacks`: the region's stacks as the
local target reads them, in one answer, without moto's serializer).
"""
from __future__ import annotations

import sys

MOTO_VERSION = "5.2.1"


def apply_patches() -> list[str]:
    import moto
    from moto.cloudformation import models as m
    from moto.cloudformation.exceptions import ValidationError
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs import models as ecs_m

    if moto.__version__ != MOTO_VERSION:
        raise SystemExit(f"copilot-doit's moto patches are for moto {MOTO_VERSION}, found {moto.__version__}")

    # 1. CREATE change sets could not resolve Fn::ImportValue: the new stack lacked the exports.
    orig_create = m.CloudFormationBackend.create_change_set

    def create_change_set(self, stack_name, change_set_name, template, parameters, description,
                          change_set_type, notification_arns=None, tags=None, role_arn=None):
        cs_id, stack_id = orig_create(self, stack_name, change_set_name, template, parameters, description,
                                      change_set_type, notification_arns, tags, role_arn)
        st = self.stacks[stack_id]
        st.cross_stack_resources = self.exports
        st.resource_map.cross_stack_resources = self.exports
        cs = self.change_sets[cs_id]
        # 5. A tags-only update is a change on AWS (tags propagate to resources); moto called it empty.
        if change_set_type == "UPDATE" and cs.status == "FAILED" and tags is not None and tags != (st.tags or {}):
            cs.status = "CREATE_COMPLETE"
            cs.execution_status = "AVAILABLE"
            cs.status_reason = None
        return cs_id, stack_id

    m.CloudFormationBackend.create_change_set = create_change_set

    # 5. (cont.) moto's CreateChangeSet handler raised "No updates are to be performed." when template and
    #    parameters were equal, ignoring tags; AWS never raises there (an empty change set ends FAILED,
    #    which the backend above decides, tags included). UpdateStack's no-op check is patch 4.
    from moto.cloudformation import responses as r
    r.CloudFormationResponse._validate_different_update = lambda self, *a, **k: None

    # 3. execute_change_set did not refresh outputs/parameters, nor register the stack's exports (so a
    #    later stack's Fn::ImportValue failed); 5. nor the stack's tags.
    orig_exec = m.CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        cs = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
        orig_exec(self, change_set_name, stack_name)
        if cs is not None:
            st = self.stacks[cs.stack_id]
            st.parameters = cs.parameters
            if cs.tags is not None:
                st.tags = cs.tags
            st._parse_template()
            st.output_map = st._create_output_map()
            for export in st.exports:
                self.exports[export.name] = export

    m.CloudFormationBackend.execute_change_set = execute_change_set

    # 4. A no-op UpdateStack must fail with "No updates are to be performed." as on AWS.
    orig_update = m.CloudFormationBackend.update_stack

    def update_stack(self, name, template, role_arn, parameters, tags):
        stack = self.get_stack(name)
        resolved = self._resolve_update_parameters(instance=stack, incoming_params=parameters)
        if stack.has_template(template) and stack.parameters == resolved and (tags is None or tags == stack.tags):
            raise ValidationError(message="No updates are to be performed.")
        return orig_update(self, name, template, role_arn, parameters, tags)

    m.CloudFormationBackend.update_stack = update_stack

    # 2. Updating AWS::ECS::TaskDefinition lost the container definitions (PascalCase not camelCased).
    orig_td_update = ecs_m.TaskDefinition.update_from_cloudformation_json.__func__

    def td_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        props = cloudformation_json["Properties"]
        props["ContainerDefinitions"] = remap_nested_keys(props.get("ContainerDefinitions", []), pascal_to_camelcase)
        if props.get("Volumes"):
            props["Volumes"] = remap_nested_keys(props["Volumes"], pascal_to_camelcase)
        return orig_td_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)

    ecs_m.TaskDefinition.update_from_cloudformation_json = classmethod(td_update)

    # 6. ECS::Service DesiredCount from a parameter (`!Ref TaskCount`, always a string in CloudFormation)
    #    crashed moto (str - int); AWS converts it. Ours: found when deploying Copilot-shaped templates.
    for name in ("create_from_cloudformation_json", "update_from_cloudformation_json"):
        orig = getattr(ecs_m.Service, name).__func__

        def cast(cls, *args, _orig=orig, **kwargs):
            json_arg = next(a for a in list(args) + list(kwargs.values()) if isinstance(a, dict) and "Properties" in a)
            props = json_arg["Properties"]
            if isinstance(props.get("DesiredCount"), str) and props["DesiredCount"].isdigit():
                props["DesiredCount"] = int(props["DesiredCount"])
            return _orig(cls, *args, **kwargs)

        setattr(ecs_m.Service, name, classmethod(cast))

    # 8. Ours (issue 10): a stack update that modifies a resource whose type moto cannot update in place
    #    (AWS::Logs::LogGroup, an ELBv2 target group's health check, ...) stored None for it, and every
    #    later DescribeStackResource / DescribeStackResources of that stack failed with HTTP 500. Keep the
    #    resource as it was (what moto modelled before): the stack stays readable.
    from moto.cloudformation import parsing as cfn_parsing
    orig_update_resource = cfn_parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):
        updated = orig_update_resource(logical_id, resource_json, resources_map, account_id, region_name)
        return updated if updated is not None else resources_map[logical_id]

    cfn_parsing.parse_and_update_resource = parse_and_update_resource

    _patch_failed_update_rolls_back(m, cfn_parsing)   # before patch 7: a held update that fails rolls back too
    _patch_held_operations_and_cancel_update_stack(m, r, ValidationError)
    _patch_elbv2_load_balancer_type()
    _patch_vpc_stack_delete()
    _patch_conditional_outputs()
    _patch_elbv2_stack_delete()
    _patch_outputs_once(m)
    _patch_resource_events(m, cfn_parsing)
    _patch_ecr_images_listing()
    _patch_stacks_listing()
    _patch_request_overhead()
    _patch_one_request_at_a_time()   # last: around everything above
    return ["create_change_set+exports", "ecs_taskdef_update", "execute_change_set+outputs+exports",
            "update_stack_noop", "change_set_tags", "ecs_service_desired_count", "hold+cancel_update_stack",
            "update_keeps_unupdatable_resources", "elbv2_load_balancer_type", "vpc_stack_delete",
            "failed_update_rolls_back+nested_stacks", "conditional_outputs", "elbv2_stack_delete",
            "outputs_once", "resource_events", "ecr_images_listing", "stacks_listing", "request_overhead",
            "one_request_at_a_time"]


# 9. Ours (issue 8, Copilot's multi-svc-app fixture): an AWS::ElasticLoadBalancingV2::LoadBalancer created by
#    CloudFormation ignored `Type` (and `IpAddressType`), so every load balancer was an application one and a
#    network load balancer's TCP/UDP/TCP_UDP listener failed with "Listener protocol 'UDP' must be one of
#    'HTTP, HTTPS'". AWS creates the type asked for; the API path (CreateLoadBalancer) already did.
def _patch_elbv2_load_balancer_type() -> None:
    from moto.elbv2 import models as elbv2_m

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        backend = elbv2_m.elbv2_backends[account_id][region_name]
        return backend.create_load_balancer(resource_name, props.get("SecurityGroups"), props.get("Subnets"),
                                            scheme=props.get("Scheme", "internet-facing"),
                                            loadbalancer_type=props.get("Type"),
                                            ip_address_type=props.get("IpAddressType", "ipv4"))

    elbv2_m.FakeLoadBalancer.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


# 7. Ours (issue 10, Ctrl-C as Copilot handles it). moto finishes every stack operation inside the
#    ExecuteChangeSet call and has no CancelUpdateStack, so a deploy can never be interrupted mid-update.
#    A change set that asks for it is held: its stack stays CREATE_IN_PROGRESS / UPDATE_IN_PROGRESS,
#    nothing applied, until CancelUpdateStack (-> UPDATE_ROLLBACK_IN_PROGRESS -> UPDATE_ROLLBACK_COMPLETE,
#    the old template, parameters and tags kept), DeleteStack (a held create), or the hold's end, when the
#    change set is executed as it would have been at once. The request is either a top-level template
#    `Metadata: {CopilotDoitEmulatorHold: {Seconds: 30, RollbackSeconds: 2}}` (or `...Hold: 30`), or a
#    change-set tag `copilot-doit-emulator:hold` = "30" or "30/2" (seconds held / seconds the rollback
#    takes; from the command line: `resource-tags=copilot-doit-emulator:hold=30`). Change sets without
#    it run exactly as before. CancelUpdateStack on any stack not UPDATE_IN_PROGRESS fails with AWS's
#    message ("CancelUpdateStack cannot be called from current stack status"). Holds end lazily: the
#    next read of the backend's stacks (DescribeStacks, DescribeStackEvents, ...) settles what is due.
HOLD_METADATA = "CopilotDoitEmulatorHold"
HOLD_TAG = "copilot-doit-emulator:hold"
MAX_HOLD = 3600.0


def hold_of(template_dict, tags) -> tuple[float, float] | None:
    """(seconds held, seconds the rollback takes) a change set asks for, or None (run at once)."""
    def seconds(v) -> float:
        return max(0.0, min(float(v), MAX_HOLD))

    meta = template_dict.get("Metadata") if isinstance(template_dict, dict) else None
    want = meta.get(HOLD_METADATA) if isinstance(meta, dict) else None
    try:
        if isinstance(want, dict):
            return seconds(want.get("Seconds", 60)), seconds(want.get("RollbackSeconds", 0))
        if want is not None and not isinstance(want, bool):
            return seconds(want), 0.0
        if tags and tags.get(HOLD_TAG):
            held, _, rollback = str(tags[HOLD_TAG]).partition("/")
            return seconds(held), seconds(rollback or 0)
    except (TypeError, ValueError):
        return None
    return None


def _patch_held_operations_and_cancel_update_stack(m, r, ValidationError) -> None:
    import threading
    import time

    from moto.core.responses import EmptyResult

    lock = threading.RLock()   # the server is threaded; held state changes under this lock

    def held(backend) -> dict:
        if not hasattr(backend, "_copilot_doit_held"):
            backend._copilot_doit_held = {}   # stack id -> {"phase", "until", "cs_id", "kind", "event"}
        return backend._copilot_doit_held

    def find_change_set(backend, change_set_name):
        return backend.change_sets.get(change_set_name) or next(
            (c for c in backend.change_sets.values() if c.change_set_name == change_set_name), None)

    def finish_rollback(stack) -> None:
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        stack.status = "UPDATE_ROLLBACK_COMPLETE"

    def settle(backend) -> None:
        entries = getattr(backend, "_copilot_doit_held", None)
        if not entries:
            return
        with lock:
            now = time.monotonic()
            for stack_id, e in list(entries.items()):
                if now < e["until"]:
                    continue
                del entries[stack_id]
                stack = backend.stacks.get(stack_id)
                if stack is None:
                    continue
                if e["phase"] == "rollback":
                    finish_rollback(stack)
                    continue
                if e["event"] in stack.events:   # the execution below writes its own IN_PROGRESS event
                    stack.events.remove(e["event"])
                try:
                    execute_at_once(backend, e["cs_id"], None)
                except Exception as exc:  # what ExecuteChangeSet would have raised ends the operation
                    rolled = "ROLLBACK_COMPLETE" if e["kind"] == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
                    stack._add_stack_event(rolled, resource_status_reason=str(exc)[:500])
                    stack.status = rolled

    execute_at_once = m.CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        cs = find_change_set(self, change_set_name)
        hold = hold_of(cs.template_dict, cs.tags) if cs is not None else None
        if not hold or not hold[0]:
            return execute_at_once(self, change_set_name, stack_name)
        with lock:
            stack = self.stacks[cs.stack_id]
            status = f"{cs.change_set_type}_IN_PROGRESS"
            stack._add_stack_event(status, resource_status_reason="User Initiated")
            stack.status = status
            cs.execution_status = "EXECUTE_IN_PROGRESS"
            held(self)[stack.stack_id] = {"phase": "hold", "until": time.monotonic() + hold[0],
                                          "rollback": hold[1], "cs_id": cs.change_set_id,
                                          "kind": cs.change_set_type, "event": stack.events[-1]}

    m.CloudFormationBackend.execute_change_set = execute_change_set

    def cancel_update_stack(self, stack_name):
        settle(self)
        with lock:
            stack = self.get_stack(stack_name)   # ValidationError "Stack with id ... does not exist"
            e = held(self).get(stack.stack_id)
            if stack.status != "UPDATE_IN_PROGRESS" or e is None or e["phase"] != "hold" or e["kind"] != "UPDATE":
                raise ValidationError(message="CancelUpdateStack cannot be called from current stack status")
            del held(self)[stack.stack_id]
            cs = self.change_sets.get(e["cs_id"])
            if cs is not None:
                cs.execution_status = "EXECUTE_FAILED"
            stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason="Stack update cancelled")
            stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
            if e["rollback"]:
                held(self)[stack.stack_id] = {"phase": "rollback", "until": time.monotonic() + e["rollback"]}
            else:
                finish_rollback(stack)

    m.CloudFormationBackend.cancel_update_stack = cancel_update_stack

    def cancel_update_stack_response(self):
        self.cloudformation_backend.cancel_update_stack(self._get_param("StackName"))
        return EmptyResult()

    cancel_update_stack_response.__name__ = "cancel_update_stack"
    r.CloudFormationResponse.cancel_update_stack = cancel_update_stack_response

    # A held create (or update) that is deleted is no longer held.
    orig_delete = m.CloudFormationBackend.delete_stack

    def delete_stack(self, name_or_stack_id):
        settle(self)
        with lock:
            entries = held(self)
            for st in list(self.stacks.values()):
                if name_or_stack_id in (st.stack_id, st.name):
                    entries.pop(st.stack_id, None)
        return orig_delete(self, name_or_stack_id)

    m.CloudFormationBackend.delete_stack = delete_stack

    # Reads settle the holds that are due first (ends a hold, or a rollback, at its time).
    for name in ("describe_stacks", "get_stack", "list_stacks", "describe_change_set", "list_change_sets"):
        orig = getattr(m.CloudFormationBackend, name)

        def settled(self, *args, _orig=orig, **kwargs):
            settle(self)
            return _orig(self, *args, **kwargs)

        settled.__name__ = name
        setattr(m.CloudFormationBackend, name, settled)


# 10. Ours (issue 8): deleting a stack that holds a VPC with an internet gateway (every environment stack, and
#     a create that failed half-way, which copilot-doit deletes before creating again as Copilot does) failed
#     with "DependencyViolation: The vpc ... has dependencies": moto's AWS::EC2::VPCGatewayAttachment and
#     AWS::EC2::RouteTable (and AWS::EC2::InternetGateway) had no delete, so the gateway stayed attached and
#     the route table stayed in the VPC. AWS detaches and deletes them. (The stack was then stuck until
#     `copilot-doit local reset`.)
def _patch_vpc_stack_delete() -> None:
    from moto.ec2 import models as ec2_m
    from moto.ec2.models.internet_gateways import InternetGateway
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.vpn_gateway import VPCGatewayAttachment

    def attachment_delete(self, account_id, region_name):
        backend = ec2_m.ec2_backends[account_id][region_name]
        gw = self.gateway_id or ""
        if gw.startswith("igw-") and gw in backend.internet_gateways:
            igw = backend.internet_gateways[gw]
            if igw.vpc is not None and igw.vpc.id == self.vpc_id:
                igw.vpc = None
        elif gw.startswith("vgw-") and gw in backend.vpn_gateways:
            backend.detach_vpn_gateway(gw, self.vpc_id)

    def route_table_delete(self, account_id, region_name):
        backend = ec2_m.ec2_backends[account_id][region_name]
        if self.id in backend.route_tables:
            self._associations.clear()       # the associations are the stack's own (deleted with it on AWS)
            backend.route_tables.pop(self.id)

    def internet_gateway_delete(self, account_id, region_name):
        # Attached: the DependencyViolation makes moto's delete loop try again after the attachment is gone.
        ec2_m.ec2_backends[account_id][region_name].delete_internet_gateway(self.id)

    VPCGatewayAttachment.delete = attachment_delete
    RouteTable.delete = route_table_delete
    InternetGateway.delete = internet_gateway_delete


# 12. Ours (issue 11, Copilot's own environment stack deployed into the emulator): an output with a false
#     `Condition` was evaluated all the same, so Copilot's env template (`PublicLoadBalancerDNSName:
#     {Condition: CreateALB, Value: !GetAtt PublicLoadBalancer.DNSName}` with no workload behind a load
#     balancer yet) failed with "Fn::GetAtt references undefined resource PublicLoadBalancer". moto's
#     parse_output asks `lazy_condition_map.get(name)`, and its LazyDict evaluates only in `[]`: `.get`
#     answered the unevaluated (truthy) function; and the stack's exports (checked for uniqueness at
#     create) ignored the condition altogether. AWS leaves such an output, and its export, out.
def _patch_conditional_outputs() -> None:
    from moto.cloudformation import parsing

    def get(self, key, default=None):
        return self[key] if key in self else default

    def exports(self):
        out = []
        for value in (self._output_json_map or {}).values():
            condition = value.get("Condition")
            if not value.get("Export") or (condition and not self._resource_map.lazy_condition_map[condition]):
                continue
            out.append(parsing.Export(self._stack_id, parsing.clean_json(value["Export"].get("Name"), self._resource_map),
                                      parsing.clean_json(value.get("Value"), self._resource_map)))
        return out

    parsing.LazyDict.get = get
    parsing.OutputMap.exports = property(exports)


# 14. Ours (issue 12, the no-op's cost): DescribeStacks took 40-60 ms for the sample's nine stacks, half of it
#     in Stack.outputs, which looked every output's export name up by evaluating the stack's whole export list
#     again (each export's Name and Value re-resolved): outputs × exports per stack and call. The list is
#     evaluated once per call here; the answer is the same.
def _patch_outputs_once(m) -> None:
    def outputs(self):
        exports = self.exports
        out = [{"OutputKey": o.key, "OutputValue": o.value, "Description": o.description,
                "ExportName": next((e.name for e in exports if e.value == o.value), None)}
               for o in self.output_map.values() if o]
        return out or None

    m.Stack.outputs = property(outputs)


# 13. Ours (issue 11, `svc delete`): deleting a stack left its AWS::ElasticLoadBalancingV2::ListenerRule,
#     TargetGroup and Listener behind (moto has no delete for them), so deploying a deleted workload again
#     failed with "PriorityInUse: The specified priority is in use" (its old rule still held the priority
#     on the environment's listener). AWS deletes them with the stack.
def _patch_elbv2_stack_delete() -> None:
    from moto.elbv2 import models as elbv2_m

    def rule_delete(self, account_id, region_name):
        elbv2_m.elbv2_backends[account_id][region_name].delete_rule(self.arn)

    def target_group_delete(self, account_id, region_name):
        backend = elbv2_m.elbv2_backends[account_id][region_name]
        if self.arn in backend.target_groups:  # in use by a rule: moto's delete loop retries after the rule
            backend.delete_target_group(self.arn)

    def listener_delete(self, account_id, region_name):
        for lb in elbv2_m.elbv2_backends[account_id][region_name].load_balancers.values():
            lb.listeners.pop(self.arn, None)

    elbv2_m.FakeListenerRule.delete = rule_delete
    elbv2_m.FakeTargetGroup.delete = target_group_delete
    elbv2_m.FakeListener.delete = listener_delete


# 11. Ours (issue 10): a failed nested-stack update broke DescribeStacks until `copilot-doit local reset`.
#     moto has no rollback ("TODO: handle execution errors and implement rollback"): an UPDATE change set
#     whose resource failed made ExecuteChangeSet answer the resource's error, and left the stack half
#     updated (its resource map on the new template and parameters, its status and template the old ones).
#     A nested stack (AWS::CloudFormation::Stack, a workload's AddonsStack) was worse: moto "updated" it by
#     deleting it and creating a new one, and a create that failed half-way stayed CREATE_IN_PROGRESS with
#     its outputs unresolved -- once per retry of moto's update loop -- so every DescribeStacks without a
#     name (copilot-doit's live check, `plan`) re-ran the failed create lazily and answered its error (e.g.
#     DynamoDB's "Table already exists") with HTTP 400, and the old nested stack (the addons' table and
#     policy) was gone. As on AWS now:
#     - a nested stack is updated in place (same stack, same resources), and a failed update of it rolls
#       it back (UPDATE_ROLLBACK_COMPLETE) before the parent learns of the failure;
#     - a nested stack that fails to create is rolled back and deleted (DELETE_COMPLETE), never left half-made;
#     - an UPDATE change set that fails is rolled back: the stack's resources are brought back to the
#       previous template and parameters, it ends UPDATE_ROLLBACK_COMPLETE (UPDATE_ROLLBACK_FAILED if
#       that fails too) with an UPDATE_FAILED event naming the resource and moto's reason, and
#       ExecuteChangeSet succeeds (AWS reports the failure by the stack's status and events).
#     CREATE change sets still fail in ExecuteChangeSet as before (the caller deletes the stack and tries again).
FAILED_ID = "_copilot_doit_failed_logical_id"


class NestedStackFailed(Exception):
    """A nested stack's create or update failed (and was rolled back): the parent's resource fails."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def reason_of(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text)[:900]


def _patch_failed_update_rolls_back(m, cfn_parsing) -> None:
    import copy

    from moto.cloudformation.utils import get_stack_from_s3_url
    from moto.utilities.utils import get_partition

    # Which resource failed: the innermost create or update names it on the exception.
    for fn_name in ("parse_and_create_resource", "parse_and_update_resource"):
        orig_fn = getattr(cfn_parsing, fn_name)

        def named(logical_id, *args, _orig=orig_fn, _kind=fn_name, **kwargs):
            try:
                return _orig(logical_id, *args, **kwargs)
            except Exception as exc:
                if not hasattr(exc, FAILED_ID):
                    try:
                        setattr(exc, FAILED_ID, (logical_id, "CREATE" if "create" in _kind else "UPDATE"))
                    except AttributeError:
                        pass
                raise

        setattr(cfn_parsing, fn_name, named)

    def resource_event(stack, logical_id, status, reason) -> None:
        rm = stack.resource_map
        res = rm._parsed_resources.get(logical_id)
        rtype = (rm._resource_json_map.get(logical_id) or {}).get("Type", "")
        try:
            phys = str(getattr(res, "physical_resource_id", None) or "")
        except Exception:
            phys = ""
        stack.events.append(m.Event(stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
                                    physical_resource_id=phys, resource_type=rtype, resource_status=status,
                                    resource_status_reason=reason, resource_properties=None))

    def snapshot(stack) -> dict:
        rm = stack.resource_map
        return {"template": stack.template, "parameters": copy.deepcopy(stack.parameters),
                "inputs": copy.deepcopy(rm.input_parameters), "tags": copy.deepcopy(stack.tags)}

    def roll_back(stack, before: dict, exc: BaseException) -> str:
        """Bring `stack` back to `before` after a failed update; its final status."""
        logical_id, kind = getattr(exc, FAILED_ID, (None, "UPDATE"))
        reason = reason_of(exc)
        if logical_id:
            resource_event(stack, logical_id, f"{kind}_FAILED", reason)
            summary = f"The following resource(s) failed to {kind.lower()}: [{logical_id}]."
        else:
            summary = reason
        stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=summary)
        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        rm = stack.resource_map
        try:
            t = before["template"]
            old = copy.deepcopy(t) if isinstance(t, dict) else m.Stack.parse_template(t)
            added = set(rm._resource_json_map) - set(old.get("Resources") or {})
            rm.update(old, before["inputs"])
            for logical_id in added:   # moto's update deletes them but keeps them parsed: re-adding them
                rm._parsed_resources.pop(logical_id, None)   # later would not create them again
            if rm.input_parameters != before["inputs"]:      # moto keeps the new ones when the old are {}
                rm.input_parameters = before["inputs"]
                rm.load_parameters()
        except Exception as exc2:
            stack._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=reason_of(exc2))
            stack.status = "UPDATE_ROLLBACK_FAILED"
            return stack.status
        finally:
            stack.template = before["template"]
            stack._parse_template()
            stack.parameters = before["parameters"]
            stack.tags = before["tags"]
            try:
                stack.output_map = stack._create_output_map()
            except Exception:
                pass
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        return stack.status

    # An UPDATE change set that fails rolls back.
    orig_exec = m.CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        cs = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
        if cs is None or cs.change_set_type != "UPDATE" or cs.stack_id not in self.stacks:
            return orig_exec(self, change_set_name, stack_name)
        stack = self.stacks[cs.stack_id]
        before = snapshot(stack)
        try:
            return orig_exec(self, change_set_name, stack_name)
        except Exception as exc:
            roll_back(stack, before, exc)
            cs.execution_status = "EXECUTE_FAILED"
            cs.status_reason = reason_of(exc)

    m.CloudFormationBackend.execute_change_set = execute_change_set

    # Nested stacks: created, and on failure rolled back and deleted; updated in place, and on failure rolled back.
    orig_nested_create = m.Stack.create_from_cloudformation_json.__func__

    def nested_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = m.cloudformation_backends[account_id][region_name]
        known = set(backend.stacks)
        try:
            return orig_nested_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        except Exception as exc:
            reason = reason_of(exc)
            for stack_id in [s for s in backend.stacks if s not in known]:
                half = backend.stacks[stack_id]
                logical_id, kind = getattr(exc, FAILED_ID, (None, "CREATE"))
                if logical_id:
                    resource_event(half, logical_id, f"{kind}_FAILED", reason)
                half._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
                try:
                    half.resource_map.delete()
                except Exception as exc2:   # what is left stays in moto's backends; the stack is gone all the same
                    half._add_stack_event("DELETE_FAILED", resource_status_reason=reason_of(exc2))
                half.output_map = m.OutputMap(half.resource_map, {}, stack_id)   # nothing to resolve lazily
                half._add_stack_event("DELETE_COMPLETE")
                half.status = "DELETE_COMPLETE"
                backend.deleted_stacks[stack_id] = backend.stacks.pop(stack_id)
            failed = NestedStackFailed(f"Embedded stack {resource_name} was not successfully created: {reason}")
            raise failed from exc

    def nested_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        backend = m.cloudformation_backends[account_id][region_name]
        nested = original_resource
        if not isinstance(nested, m.Stack) or nested.stack_id not in backend.stacks:
            return nested_create(cls, new_resource_name, cloudformation_json, account_id, region_name)
        if nested.status == "UPDATE_ROLLBACK_FAILED":   # as AWS: nothing moves it but continue-update-rollback
            raise NestedStackFailed(f"Embedded stack {nested.stack_id} is in UPDATE_ROLLBACK_FAILED state and "
                                    "can not be updated.")
        props = cloudformation_json["Properties"]
        body = get_stack_from_s3_url(props["TemplateURL"], account_id=account_id,
                                     partition=get_partition(region_name))
        parameters = props.get("Parameters", {})
        if nested.has_template(body) and nested.resource_map.input_parameters == parameters:
            return nested
        before = snapshot(nested)
        try:
            nested.update(body, parameters=parameters)
        except Exception as exc:
            status = roll_back(nested, before, exc)
            raise NestedStackFailed(f"Embedded stack {nested.stack_id} was not successfully updated. Currently in "
                                    f"{status} with reason: {reason_of(exc)}") from exc
        return nested

    m.Stack.create_from_cloudformation_json = classmethod(nested_create)
    m.Stack.update_from_cloudformation_json = classmethod(nested_update)


def main(argv: list[str]) -> None:
    apply_patches()
    # Pay moto's ~1 s CloudFormation import now, not on the first deploy.
    import moto.cloudformation.parsing  # noqa: F401
    from moto.server import main as moto_main
    moto_main(argv)


def _patch_resource_events(m, cfn_parsing) -> None:
    """Patch 15 (ours, issue 13): moto records only the stack's own events; CloudFormation also records each resource's
    `CREATE_IN_PROGRESS`/`CREATE_COMPLETE` (`UPDATE_…` for an update). Added around moto's create and update
    of one resource, on the stack the resource map belongs to (a nested stack's resources on the nested one)."""
    def stack_of(resources_map, account_id, region_name):
        try:
            return m.cloudformation_backends[account_id][region_name].stacks.get(resources_map.stack_id)
        except Exception:
            return None

    def add(stack, logical_id, resource_json, status, resource=None) -> None:
        try:
            phys = str(getattr(resource, "physical_resource_id", None) or "") if resource is not None else ""
        except Exception:
            phys = ""
        stack.events.append(m.Event(stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
                                    physical_resource_id=phys, resource_type=(resource_json or {}).get("Type", ""),
                                    resource_status=status, resource_status_reason=None, resource_properties=None))

    for fn_name, verb in (("parse_and_create_resource", "CREATE"), ("parse_and_update_resource", "UPDATE")):
        orig = getattr(cfn_parsing, fn_name)

        def with_events(logical_id, resource_json, resources_map, account_id, region_name, _orig=orig, _verb=verb):
            stack = stack_of(resources_map, account_id, region_name)
            condition = resource_json.get("Condition")
            if stack is None or (condition and not resources_map.lazy_condition_map[condition]):
                return _orig(logical_id, resource_json, resources_map, account_id, region_name)
            add(stack, logical_id, resource_json, f"{_verb}_IN_PROGRESS")
            resource = _orig(logical_id, resource_json, resources_map, account_id, region_name)
            add(stack, logical_id, resource_json, f"{_verb}_COMPLETE", resource)
            return resource

        setattr(cfn_parsing, fn_name, with_events)


ECR_IMAGES_PATH = "/copilot-doit/ecr-images"


def ecr_images(account_id: str, region: str) -> dict[str, list[str]]:
    """{repository name: [image digests]} of the emulated ECR of one account and region."""
    from moto.ecr.models import ecr_backends
    try:
        backend = ecr_backends[account_id][region]
    except KeyError:
        return {}
    return {name: sorted({img.image_digest for img in repo.images}) for name, repo in list(backend.repositories.items())}


def _patch_ecr_images_listing() -> None:
    """Patch 16 (ours, issue 12): ECR has no call that answers "which of these images exist" across
    repositories — DescribeImages is per repository, and moto spends ~15-20 ms on any request — so a no-op of
    50 workloads asked 50 times (0.9 s of the emulator's time one after another). The local target asks once
    per run here instead: `GET /copilot-doit/ecr-images?account=ID&region=R` → {"repositories": {name:
    [digest, ...]}}. Read-only, answered from moto's own ECR models, nothing else reachable through it."""
    _serve_json(ECR_IMAGES_PATH, lambda account, region: {"repositories": ecr_images(account, region)})


def _serve_json(path: str, answer) -> None:
    """Answer `GET path?account=ID&region=R` with `answer(account, region)` as JSON; any other request goes
    to moto as before."""
    import json
    import urllib.parse

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    orig_call = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        if environ.get("PATH_INFO") != path or environ.get("REQUEST_METHOD") != "GET":
            return orig_call(self, environ, start_response)
        q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        account = (q.get("account") or ["123456789012"])[0]
        region = (q.get("region") or ["us-east-1"])[0]
        body = json.dumps(answer(account, region)).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    DomainDispatcherApplication.__call__ = call


STACKS_PATH = "/copilot-doit/stacks"


def stack_rows(account_id: str, region: str) -> list[dict]:
    """Every stack of one account and region, each as the local target reads it from a DescribeStacks answer
    (lite.describe_stacks): the same backend read (holds settled, as patch 7 does for every read) and the
    same values, made text as moto's query serializer makes them (str(); None left out; timestamps by its
    own converter), in its order."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.core.serialize import TimestampSerializer

    def text(value):
        return None if value is None else str(value)

    stamp = TimestampSerializer(TimestampSerializer.TIMESTAMP_FORMAT_ISO8601)

    def when(value):
        return None if value is None else stamp._convert_timestamp_to_str(value, "iso8601")

    rows = []
    for stack in cloudformation_backends[account_id][region].describe_stacks(None):
        rows.append({
            "name": text(stack.name), "status": text(stack.status),
            "tags": [[text(k), text(v)] for k, v in (stack.tags or {}).items()],
            "outputs": [[text(o.get("OutputKey")), text(o.get("OutputValue"))] for o in stack.outputs or ()],
            "parameters": [[text(p.get("ParameterKey")), text(p.get("ParameterValue"))] for p in stack.parameter_list],
            "updated": when(getattr(stack, "last_updated_time", None)) or when(stack.creation_time) or "",
        })
    return rows


def _patch_stacks_listing() -> None:
    """Patch 19 (ours, issue 12): DescribeStacks renders every stack through moto's model-driven serializer,
    ~0.65 ms a stack here (33 ms for a page of 50, on the run's path: the environment's check waits for the
    region's listing before the first build of a deploy can start). The local target reads the listing in
    one answer here instead: `GET /copilot-doit/stacks?account=ID&region=R` → {"stacks": [stack_rows]}, all
    pages at once. Read-only, from moto's own models; DescribeStacks itself is unchanged (the AWS target's
    boto3 path, pointed at the emulator, still walks it)."""
    _serve_json(STACKS_PATH, lambda account, region: {"stacks": stack_rows(account, region)})


def _patch_request_overhead() -> None:
    """Patch 18 (ours, issue 12): two per-request costs of moto's server that emulate nothing. Its dispatcher
    lists moto's package folders (an os.listdir and an isdir per folder, ~150) on every request to find the
    service a host names, and werkzeug writes a line per request to moto.log; in a -j 8 first deploy of 50
    workloads the two were ~17 % of the server's CPU (py-spy: 85 and 77 of 938 samples). The folder list is
    read once (it cannot change while the server runs); requests are not logged (errors still are)."""
    import logging

    from moto import backends

    folders = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: folders
    # werkzeug sets its logger to INFO only when nobody set a level; WARNING keeps its error lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _patch_one_request_at_a_time() -> None:
    """Patch 17 (ours, issue 12): moto's server answers each request in its own thread, but its models are
    plain dicts and lists: a first deploy of 500 workloads with `-j 8` failed one ExecuteChangeSet with HTTP
    500 (`RuntimeError: dictionary changed size during iteration` in IAM's create_role, another request
    adding a role meanwhile); 10 threads creating 400 roles hit it once here. Requests are handled one at a
    time: moto holds the GIL while it works anyway, so little parallelism is lost, and nothing in the patches
    waits inside a request (held operations settle on later requests)."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    inner = DomainDispatcherApplication.__call__
    lock = threading.Lock()

    def one_at_a_time(self, environ, start_response):
        with lock:
            return inner(self, environ, start_response)

    DomainDispatcherApplication.__call__ = one_at_a_time


if __name__ == "__main__":
    main(sys.argv[1:])


