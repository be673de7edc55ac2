"""The embedded AWS endpoint: moto's server with the patches that make it behave like CloudFormation.

Run as `python -m copilot_doit.targets.local.moto_server -H 127.0.0.1 -p PORT` (started by `services.py`).
The patches depend on moto internals, hence the pin `moto[server]==5.2.1` in pyproject.toml; each one
has a test in tests/test_local_moto_patches.py that fails without it. Numbers refer to
research/feasibility.md §1.b.6; patch 5 is ours (stack tags through change sets).
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
    return ["create_change_set+exports", "ecs_taskdef_update", "execute_change_set+outputs+exports",
            "update_stack_noop", "change_set_tags", "ecs_service_desired_count"]


def main(argv: list[str]) -> None:
    apply_patches()
    # Pay moto's ~1 s CloudFormation import now, not on the first deploy.
    import moto.cloudformation.parsing  # noqa: F401
    from moto.server import main as moto_main
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
