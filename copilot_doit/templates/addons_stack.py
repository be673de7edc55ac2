"""The nested addons stack (`AddonsStack`)."""
from __future__ import annotations

from . import ref


def addons_stack(b):
    addons = b.ri.addons
    if not addons:
        return
    params = {"App": ref("AppName"), "Env": ref("EnvName"), "Name": ref("WorkloadName")}
    params.update(addons.get("parameters") or {})
    # Copilot guards this with `Condition: HasAddons`; here the stack exists only when there are addons,
    # so the GetAtts on its outputs need no guard (and cfn-lint has nothing to warn about).
    b.resources["AddonsStack"] = {"Type": "AWS::CloudFormation::Stack",
                                  "Properties": {"Parameters": params, "TemplateURL": ref("AddonsTemplateURL")}}
