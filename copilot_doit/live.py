"""What a run shows while it runs: plain lines, or a live view on a terminal (issue #13).

Two displays answer the same hooks (`display()` returns the one of this run):

    PlainDisplay   the lines copilot-doit always printed, byte for byte: `.  <task>  (reason)`, `-- <task>
                   (reason)`, the build output, one line per stack event, the rollout's lines. Used when
                   stdout is no terminal (CI, a pipe: logs stay greppable), with --quiet, TERM=dumb,
                   COPILOT_DOIT_PLAIN=1, or with parallel tasks (-j N: their lines interleave).
    RichDisplay    a `rich.live.Live` area at the bottom of the terminal: one line per running stage with a
                   spinner and its elapsed time; under it the last build steps, a bar per pushed layer, the
                   stack's resources Copilot-style (plain-words description, latest status, time) and the ECS
                   rollout (counts, deployment state, stopped tasks). A finished stage collapses to one `✔`
                   (or `✘`) line and its result line in the scrollback; what else the stage printed is kept
                   there only when it failed or said `warning`.

The hooks (Reporter: stage_started/stage_done/stage_skipped/write; stages: build_line, push_chunk,
stack_event, rollout) are cheap on the plain path. `rich` is imported only when a stage runs on a terminal:
a no-op prints its `--` lines as plain text, so its start-up stays as it was.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque

STAGE_PREFIXES = ("env:", "build:", "push:", "package:", "lint:", "deploy:")
BUILD_LINES = 5          # build output lines kept under a running build stage
ROLLOUT_LINES = 6        # rollout lines (stopped tasks, events, deployment states) kept under a stack
LOG_LINES = 3            # the stage's own printed lines shown under it while it runs
OFF = ("", "0", "false", "no", "off")

# Copilot's descriptions of its templates' resources (the `aws:copilot:description` metadata of
# internal/pkg/template/templates/, as in its golden stacks), by logical id: our templates keep Copilot's
# logical ids. Ids that carry a number or a name (TargetGroup1, NatGateway2, <topic>SNSTopic) fall back
# to the type's words.
BY_LOGICAL_ID = {
    "Service": "An ECS service to run and maintain your tasks in the environment cluster",
    "TaskDefinition": "An ECS task definition to group your containers and run them on ECS",
    "TaskRole": "An IAM role to control permissions for the containers in your tasks",
    "ExecutionRole": "An IAM Role for the Fargate agent to make AWS API calls on your behalf",
    "LogGroup": "A CloudWatch log group to hold your service logs",
    "TargetGroup": "A target group to connect the load balancer to your service",
    "DiscoveryService": "Service discovery for your services to communicate within the VPC",
    "EnvControllerAction": "Update your environment's shared resources",
    "EnvControllerRole": "An IAM role to update your environment stack",
    "RulePriorityFunctionRole": "An IAM Role to describe load balancer rules for assigning a priority",
    "HTTPRulePriorityAction": "A custom resource assigning priority for HTTP listener rules",
    "HTTPSRulePriorityAction": "A custom resource assigning priority for HTTPS listener rules",
    "HTTPListenerRule": "An HTTP listener rule that forwards HTTP traffic to your tasks",
    "HTTPSListenerRule": "An HTTPS listener rule that forwards HTTPS traffic to your tasks",
    "HTTPListenerRuleWithDomain": "An HTTP listener rule that redirects HTTP to HTTPS",
    "AddonsStack": "An Addons CloudFormation Stack for your additional AWS resources",
    "AutoScalingRole": "An IAM role for container auto scaling",
    "AutoScalingTarget": "An autoscaling target to scale your service's desired count",
    "DynamicDesiredCountAction": "A custom resource returning the ECS service's running task count",
    "DynamicDesiredCountFunctionRole": "An IAM Role for describing number of running tasks in your ECS service",
    "LoadBalancerInternalDNSAlias": "An alias to the internal load balancer",
    "StateMachine": "A state machine to invoke your job and handle retry and timeout logic",
    "StateMachineRole": "An IAM role for a state machine to run ECS tasks in your cluster",
    "Rule": "A CloudWatch event rule to trigger the job's state machine",
    "EventsQueue": "An events SQS queue to buffer messages",
    "DeadLetterQueue": "A dead letter SQS queue to buffer failed messages from the events queue",
    "EventsKMSKey": "A KMS key to encrypt messages in your queues",
    "BacklogPerTaskCalculatorFunction": "A Lambda function to emit BacklogPerTask metrics to CloudWatch",
    "BacklogPerTaskCalculatorRole": "An IAM role for BacklogPerTaskCalculatorFunction",
    "BacklogPerTaskScheduledRule": "A trigger to invoke the BacklogPerTaskCalculator Lambda function every minute",
    # the environment stack
    "VPC": "A Virtual Private Cloud to control networking of your AWS resources",
    "InternetGateway": "An Internet Gateway to connect to the public internet",
    "PublicRouteTable": "A custom route table that directs network traffic for the public subnets",
    "Cluster": "An ECS cluster to group your services",
    "PublicLoadBalancer": "An Application Load Balancer to distribute public traffic to your services",
    "InternalLoadBalancer": "An internal Application Load Balancer to distribute private traffic from within "
                            "the VPC to your services",
    "HTTPListener": "A load balancer listener to route HTTP traffic",
    "HTTPSListener": "A load balancer listener to route HTTPS traffic",
    "InternalHTTPListener": "An internal load balancer listener to route HTTP traffic",
    "InternalHTTPSListener": "An internal load balancer listener to route HTTPS traffic",
    "EnvironmentSecurityGroup": "A security group to allow your containers to talk to each other",
    "PublicHTTPLoadBalancerSecurityGroup": "A security group for your load balancer allowing HTTP traffic",
    "PublicHTTPSLoadBalancerSecurityGroup": "A security group for your load balancer allowing HTTPS traffic",
    "InternalLoadBalancerSecurityGroup": "A security group for your internal load balancer allowing HTTP traffic "
                                         "from within the VPC",
    "ServiceDiscoveryNamespace": "A private DNS namespace for discovering services within the environment",
    "CloudformationExecutionRole": "An IAM Role for AWS CloudFormation to manage resources",
    "EnvironmentManagerRole": "An IAM Role to describe resources in your environment",
    "FileSystem": "An EFS filesystem for persistent task storage",
    "EFSSecurityGroup": "A security group to allow your containers to talk to EFS storage",
    "LogResourcePolicy": "A resource policy to allow AWS services to create log streams for your workloads",
    "CustomResourceRole": "An IAM role to manage certificates and Route53 hosted zones",
    "EnvironmentHostedZone": "A Route 53 Hosted Zone for the environment's subdomain",
}

# By resource type, for every other resource (Copilot's words where it has them for the type).
BY_TYPE = {
    "AWS::ECS::Service": "An ECS service to run and maintain your tasks in the environment cluster",
    "AWS::ECS::TaskDefinition": "An ECS task definition to group your containers and run them on ECS",
    "AWS::ECS::Cluster": "An ECS cluster to group your services",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "A target group to connect the load balancer to your service",
    "AWS::ElasticLoadBalancingV2::ListenerRule": "A listener rule that forwards traffic to your tasks",
    "AWS::ElasticLoadBalancingV2::Listener": "A load balancer listener to route traffic",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "A load balancer to distribute traffic to your services",
    "AWS::Logs::LogGroup": "A CloudWatch log group to hold your service logs",
    "AWS::IAM::Role": "An IAM role to grant permissions to your resources",
    "AWS::IAM::ManagedPolicy": "An IAM managed policy for your service to access other resources",
    "AWS::IAM::Policy": "An IAM policy for your service to access other resources",
    "AWS::ServiceDiscovery::Service": "Service discovery for your services to communicate within the VPC",
    "AWS::ServiceDiscovery::PrivateDnsNamespace": "A private DNS namespace for discovering services within the "
                                                  "environment",
    "AWS::CloudFormation::Stack": "A CloudFormation nested stack for your additional AWS resources",
    "AWS::SNS::Topic": "A SNS topic to broadcast events",
    "AWS::SNS::Subscription": "A SNS subscription to a topic",
    "AWS::SQS::Queue": "A SQS queue to buffer messages",
    "AWS::SQS::QueuePolicy": "A queue policy to let SNS topics send messages to the queue",
    "AWS::SNS::TopicPolicy": "A topic policy to allow subscriptions to the topic",
    "AWS::KMS::Key": "A KMS key to encrypt your data",
    "AWS::ApplicationAutoScaling::ScalableTarget": "An autoscaling target to scale your service's desired count",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "An autoscaling policy to scale your service",
    "AWS::CloudWatch::Alarm": "A CloudWatch alarm for deployment rollbacks",
    "AWS::StepFunctions::StateMachine": "A state machine to invoke your job and handle retry and timeout logic",
    "AWS::Events::Rule": "A CloudWatch event rule to trigger your job",
    "AWS::Lambda::Function": "A Lambda function for a custom resource",
    "AWS::Lambda::Permission": "A permission to invoke a Lambda function",
    "AWS::EC2::VPC": "A Virtual Private Cloud to control networking of your AWS resources",
    "AWS::EC2::Subnet": "A subnet for your resources",
    "AWS::EC2::SecurityGroup": "A security group to control traffic to your resources",
    "AWS::EC2::SecurityGroupIngress": "An inbound rule of a security group",
    "AWS::EC2::InternetGateway": "An Internet Gateway to connect to the public internet",
    "AWS::EC2::NatGateway": "A NAT Gateway enabling workloads in private subnets to reach the internet",
    "AWS::EC2::EIP": "An Elastic IP for a NAT Gateway",
    "AWS::EC2::RouteTable": "A route table that directs network traffic for your subnets",
    "AWS::EFS::FileSystem": "An EFS filesystem for persistent task storage",
    "AWS::EFS::AccessPoint": "An EFS access point to handle POSIX permissions",
    "AWS::Route53::RecordSetGroup": "Alias records for the load balancer",
    "AWS::Route53::HostedZone": "A Route 53 hosted zone",
    "AWS::S3::Bucket": "An S3 bucket to store your data",
    "AWS::S3::BucketPolicy": "A bucket policy to deny unencrypted access to the bucket and its contents",
    "AWS::DynamoDB::Table": "An Amazon DynamoDB table",
    "AWS::RDS::DBCluster": "An Aurora database cluster",
    "AWS::SecretsManager::Secret": "A Secrets Manager secret to store your credentials",
}


def describe(logical_id: str, resource_type: str | None) -> str:
    """A resource's plain-words description: Copilot's for its logical id, else for its type, else the type."""
    if logical_id in BY_LOGICAL_ID:
        return BY_LOGICAL_ID[logical_id]
    if resource_type in BY_TYPE:
        return BY_TYPE[resource_type]
    if resource_type and resource_type.startswith("Custom::"):
        return f"A custom resource ({resource_type[8:]})"
    return resource_type or "A resource"


# --- plain -------------------------------------------------------------------------------------------------
class PlainDisplay:
    """Today's lines. `write` is the reporter's stream; the stages' lines go through print() (sys.stdout,
    muted by --quiet)."""

    rich = False

    def __init__(self, write=None):
        self._write = write

    def write(self, text: str) -> None:
        (self._write or sys.stdout.write)(text)

    def stage_started(self, task: str, note: str) -> None:
        self.write(f".  {task}{note}\n")

    def stage_skipped(self, task: str, note: str) -> None:
        self.write(f"-- {task}{note}\n")

    def stage_done(self, task: str, ok: bool) -> None:
        pass

    def build_line(self, line: str) -> None:
        print(line)

    def push_chunk(self, chunk: dict) -> None:
        pass  # the push's progress was never printed: its result line says what was pushed

    def stack_event(self, stack: str, event: dict, line: str) -> None:
        print(line, flush=True)

    def rollout(self, name: str, counts: str | None, lines: list[str]) -> None:
        for line in lines:
            print(line)

    def close(self) -> None:
        pass


# --- rich --------------------------------------------------------------------------------------------------
# The live view's state: plain classes (dataclasses cost ~1 ms each at import, on every no-op too).
class Resource:
    def __init__(self, logical_id: str, kind: str | None, description: str):
        self.logical_id, self.kind, self.description = logical_id, kind, description
        self.status = "not started"
        self.reasons: list[str] = []           # every *_FAILED event's reason, in order
        self.started: float | None = None      # event time (s) of its first *_IN_PROGRESS
        self.ended: float | None = None        # event time (s) of the status that ended it
        self.seen = 0.0                        # our clock when that *_IN_PROGRESS was seen


class StackView:
    def __init__(self, name: str):
        self.name = name
        self.resources: dict[str, Resource] = {}   # first seen first; the stack first


class RolloutView:
    def __init__(self, name: str):
        self.name, self.counts = name, ""
        self.lines: deque = deque(maxlen=ROLLOUT_LINES)


class Layer:
    def __init__(self, status: str):
        self.status, self.current, self.total = status, 0, 0


class Stage:
    def __init__(self, task: str, note: str, started: float):
        self.task, self.note, self.started = task, note, started
        self.log: list[str] = []                         # lines the stage printed itself
        self.build: deque = deque(maxlen=BUILD_LINES)
        self.push_header = ""
        self.layers: dict[str, Layer] = {}
        self.pushed: list[str] = []                      # `<tag>: digest: sha256:… size: …`
        self.stacks: dict[str, StackView] = {}
        self.rollouts: dict[str, RolloutView] = {}


DONE_WORDS = {"CREATE_COMPLETE": "created", "UPDATE_COMPLETE": "updated", "DELETE_COMPLETE": "deleted"}


def _when(event: dict) -> float:
    ts = event.get("Timestamp")
    return ts.timestamp() if ts is not None and hasattr(ts, "timestamp") else time.time()


def _pretty(status: str) -> str:
    return status.lower().replace("_", " ")


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _label(*parts):
    """One line of the live area that is cut with `…` rather than wrapped (a stage, a resource, a layer)."""
    from rich.text import Text
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


def _wrapped(indent: str, text):
    """Free text (a failure reason, a stopped task) wrapped under its indent: nothing of it is cut."""
    from rich.padding import Padding
    return Padding(text, (0, 0, 0, len(indent)))


class _StageOut:
    """sys.stdout while the live view runs: what a stage prints goes to that stage's log (shown under it,
    and kept in the scrollback when it matters); anything else is printed above the live area."""

    def __init__(self, display: RichDisplay, real):
        self._display, self._real, self._pending = display, real, ""
        self.encoding = getattr(real, "encoding", "utf-8")

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._display.line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._real.fileno()

    def writable(self) -> bool:
        return True


class RichDisplay:
    """The live view (see the module's doc). `console`: a rich Console to draw on (tests pass one writing to
    a StringIO); without it one is made on `stream` when the first stage starts. `live=False` draws nothing
    live: `renderable()` is what the live area would show, finished stages are printed as they end.
    `capture_stdout` (default: `live`): what stages print goes to their log, not straight to the terminal."""

    rich = True

    def __init__(self, stream=None, console=None, live: bool = True, clock=time.monotonic,
                 capture_stdout: bool | None = None):
        self._stream = stream if stream is not None else sys.stdout
        self._console = console
        self._use_live = live
        self._capture = live if capture_stdout is None else capture_stdout
        self._live = None
        self._clock = clock
        self._stages: dict[str, Stage] = {}
        self._lock = threading.RLock()
        self._saved_stdout = None
        self._closed = False

    # -- starting and stopping ------------------------------------------------------------------------------
    def _start(self) -> None:
        """The first running stage: rich is loaded, and the live area starts (on a real terminal)."""
        if self._console is None:
            from rich.console import Console
            self._console = Console(file=self._stream, highlight=False)
        if self._use_live and self._live is None and not self._closed:
            from rich.live import Live
            self._live = Live(console=self._console, get_renderable=self.renderable, refresh_per_second=8,
                              transient=True, redirect_stdout=False, redirect_stderr=True)
            self._live.start()
            atexit.register(self.close)
        if self._capture and self._saved_stdout is None and not self._closed:
            self._saved_stdout = sys.stdout
            sys.stdout = _StageOut(self, self._saved_stdout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            said = [r for task in list(self._stages) for r in self._finish(task, None)]  # interrupted: said
            if self._saved_stdout is not None:
                sys.stdout = self._saved_stdout
                self._saved_stdout = None
            live, self._live = self._live, None
        if said:
            self._print(said)
        if live is not None:
            live.stop()

    def _print(self, renderables: list) -> None:
        """Into the scrollback (above the live area). Never called holding self._lock: the live area's
        refresh holds rich's lock while it asks `renderable()` for ours, and console.print takes rich's."""
        for r in renderables:
            self._console.print(r, soft_wrap=True)

    # -- the reporter's hooks -------------------------------------------------------------------------------
    def write(self, text: str) -> None:
        if self._console is None:
            self._stream.write(text)
            self._stream.flush()
            return
        from rich.text import Text
        self._console.print(Text(text), end="", soft_wrap=True)

    def stage_started(self, task: str, note: str) -> None:
        if not task.startswith(STAGE_PREFIXES):   # `plan` and friends print their own text, plainly
            self.write(f".  {task}{note}\n")
            return
        with self._lock:
            self._start()
            self._stages[task] = Stage(task, note, self._clock())

    def stage_skipped(self, task: str, note: str) -> None:
        if self._console is None:
            self.write(f"-- {task}{note}\n")
            return
        from rich.text import Text
        self._print([Text.assemble(("-- ", "dim"), (task, "dim"), (note, "dim"))])

    def stage_done(self, task: str, ok: bool) -> None:
        live = self._live
        if live is not None and task in self._stages:
            live.refresh()   # its last state is drawn once (a fast stack's resources) before it collapses
        with self._lock:
            said = self._finish(task, ok) if task in self._stages else []
        if said:
            self._print(said)

    # -- the stages' hooks ----------------------------------------------------------------------------------
    def _current(self, prefix: str | None = None) -> Stage | None:
        """The running stage these lines belong to: the last one started (of the given kind)."""
        for st in reversed(list(self._stages.values())):
            if prefix is None or st.task.startswith(prefix):
                return st
        return None

    def line(self, text: str) -> None:
        """A line a stage printed (through sys.stdout) while the live view runs."""
        with self._lock:
            st = self._current()
            if st is not None:
                st.log.append(text)
                return
        self.write(text + "\n")

    def build_line(self, line: str) -> None:
        with self._lock:
            st = self._current("build:")
            if st is not None:
                if line.strip():
                    st.build.append(line.strip())
                return
        self.line(line)

    def push_chunk(self, chunk: dict) -> None:
        with self._lock:
            st = self._current("push:")
            if st is None:
                return
            status, layer = chunk.get("status") or "", chunk.get("id")
            if layer and status:
                detail = chunk.get("progressDetail") or {}
                row = st.layers.setdefault(layer, Layer(status))
                row.status = status
                if detail.get("total"):
                    row.total = detail["total"]
                    row.current = min(detail.get("current") or 0, row.total)   # a small layer's count overshoots
                elif status == "Pushed" or status.startswith("Mounted from"):
                    row.current = row.total
            elif status.startswith("The push refers to"):
                st.push_header = status
            elif ": digest: " in status:
                st.pushed.append(status)

    def stack_event(self, stack: str, event: dict, line: str) -> None:
        with self._lock:
            st = self._current("deploy:") or self._current("env:")
            if st is not None:
                self._stack_event(st, stack, event)
                return
        self.line(line)

    def _stack_event(self, st: Stage, stack: str, event: dict) -> None:
        """One CloudFormation event: the resource's line (made on its first event) gets its latest status."""
        view = st.stacks.setdefault(stack, StackView(stack))
        lid = event.get("LogicalResourceId") or stack
        status = event.get("ResourceStatus") or "?"
        res = view.resources.get(lid)
        if res is None:
            kind = event.get("ResourceType")
            res = view.resources[lid] = Resource(lid, kind, describe(lid, kind))
        if lid == stack and status.endswith("_IN_PROGRESS") and "ROLLBACK" not in status:
            verb = "Creating" if status.startswith(("CREATE", "REVIEW")) else \
                "Deleting" if status.startswith("DELETE") else "Updating"
            res.description = f"{verb} the infrastructure for stack {stack}"   # Copilot's words
        res.status = status
        when = _when(event)
        if status.endswith("_IN_PROGRESS"):
            if res.started is None or res.ended is not None:
                res.started, res.ended, res.seen = when, None, self._clock()
        else:
            res.ended = when
        if status.endswith("_FAILED") and event.get("ResourceStatusReason"):
            res.reasons.append(event["ResourceStatusReason"])

    def rollout(self, name: str, counts: str | None, lines: list[str]) -> None:
        with self._lock:
            st = self._current("deploy:")
            if st is not None:
                view = st.rollouts.setdefault(name, RolloutView(name))
                if counts:
                    view.counts = counts
                for line in lines:
                    if line.strip() != counts:
                        view.lines.append(line.strip())
                return
        for line in lines:
            self.line(line)

    # -- drawing --------------------------------------------------------------------------------------------
    def renderable(self):
        """The live area: every running stage with its details."""
        from rich.console import Group
        with self._lock:
            return Group(*(self._stage_view(st) for st in self._stages.values()))

    def _stage_view(self, st: Stage, header: bool = True):
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, width=2)
        grid.add_column(ratio=1, overflow="fold")   # free text wraps; labels are cut (their Text says so)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(no_wrap=True, justify="right")
        if header:
            grid.add_row(Spinner("dots", style="cyan"), _label((st.task, "bold"), (st.note, "dim")), "",
                         Text(_seconds(self._clock() - st.started), style="dim"))
        for text in st.log[-LOG_LINES:] if not st.stacks and not st.layers else st.log[-1:]:
            grid.add_row("", _label((text.strip(), "dim")), "", "")
        for text in st.build:
            grid.add_row("", _label(("  " + text, "dim")), "", "")
        self._push_rows(grid, st)
        for view in st.stacks.values():
            self._stack_rows(grid, st, view, header)
        for name, r in st.rollouts.items():
            if not any("Service" in v.resources for v in st.stacks.values()):
                self._rollout_rows(grid, r, "  ")
        return grid

    def _push_rows(self, grid, st: Stage) -> None:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        if st.push_header:
            grid.add_row("", _label(("  " + st.push_header, "dim")), "", "")
        for layer, row in st.layers.items():
            done = row.status in ("Pushed", "Layer already exists") or row.status.startswith("Mounted from")
            line = Table.grid(padding=(0, 1))
            line.add_column(width=14, no_wrap=True)
            line.add_column(width=22, no_wrap=True, overflow="ellipsis")
            line.add_column(no_wrap=True)
            bar = ProgressBar(total=row.total or 1, completed=(row.total or 1) if done else row.current, width=24)
            size = f"{_size(row.current)}/{_size(row.total)}" if row.total and not done else \
                (_size(row.total) if row.total else "")
            line.add_row(Text("  " + layer[:12]), _label((row.status, "green" if done else "yellow")),
                         bar if row.total or done else Text(""))
            grid.add_row("", line, Text(size, style="dim"), "")
        for text in st.pushed:
            grid.add_row("", _label(("  " + text, "dim")), "", "")

    def _stack_rows(self, grid, st: Stage, view: StackView, live: bool = True) -> None:
        from rich.spinner import Spinner
        from rich.text import Text
        for lid, res in view.resources.items():
            indent = "  " if lid == view.name else "    "
            failed = bool(res.reasons) or res.status.endswith("FAILED") or "ROLLBACK" in res.status
            if res.status.endswith("_IN_PROGRESS"):
                mark, style = (Spinner("dots", style="yellow") if live else Text("…")), "yellow"
            elif failed:
                mark, style = Text("✘", style="red"), "red"
            else:
                mark, style = Text("✔", style="green"), "green"
            label = _label(indent, "- ", res.description) if lid == view.name else \
                _label(indent, "- ", (lid, "bold"), "  ", res.description)
            elapsed = ""
            if res.started is not None:
                end = res.ended if res.ended is not None else res.started + self._clock() - res.seen
                elapsed = _seconds(max(0.0, end - res.started))
            grid.add_row(mark, label, Text(f"[{_pretty(res.status)}]", style=style), Text(elapsed, style="dim"))
            for reason in res.reasons:
                grid.add_row("", _wrapped(indent + "    ", Text(reason, style="red")), "", "")
            if lid == "Service":
                for r in st.rollouts.values():
                    self._rollout_rows(grid, r, indent + "    ")

    def _rollout_rows(self, grid, r: RolloutView, indent: str) -> None:
        from rich.text import Text
        if r.counts:
            grid.add_row("", _wrapped(indent, Text(r.counts)), "", "")
        for line in r.lines:
            bad = "stopped" in line or "FAILED" in line or "rolled back" in line or "rolls back" in line
            grid.add_row("", _wrapped(indent, Text(line, style="red" if bad else "dim")), "", "")

    def _result(self, st: Stage) -> list[str]:
        """The short result under a finished stage: its last own line, and what it pushed or deployed."""
        out = [t.strip() for t in st.log if "warning" in t.lower()]
        for view in st.stacks.values():
            top = view.resources.get(view.name)
            verbs: dict[str, int] = {}
            for lid, res in view.resources.items():
                if lid != view.name:
                    verb = DONE_WORDS.get(res.status, _pretty(res.status))
                    verbs[verb] = verbs.get(verb, 0) + 1
            said = ", ".join(f"{n} {v}" for v, n in verbs.items())
            out.append(f"stack {view.name} {top.status if top else ''}" + (f": {said}" if said else ""))
        for r in st.rollouts.values():
            if r.counts:
                out.append(r.counts)
        if st.log:
            last = st.log[-1].strip()
            if last not in out:
                out.append(last)
        return out

    def _finish(self, task: str, ok: bool | None) -> list:
        """The finished stage's lines for the scrollback (printed by the caller, outside the lock)."""
        from rich.text import Text
        st = self._stages.pop(task)
        took = _seconds(self._clock() - st.started)
        mark, style = ("✔", "green") if ok else ("✘", "red") if ok is False else ("…", "yellow")
        out = [Text.assemble((mark + " ", style), (task, "bold"), (st.note, "dim"), ("  " + took, "dim"))]
        if ok:
            return out + [Text("    " + line, style="dim") for line in self._result(st)]
        # Failed or interrupted: everything it printed, and the details as they were last drawn.
        out += [Text("    " + line.strip()) for line in st.log]
        st.log = []
        return out + [self._stage_view(st, header=False)]


# --- choosing ----------------------------------------------------------------------------------------------
_DISPLAY: PlainDisplay | RichDisplay | None = None
_PLAIN = PlainDisplay()


def display() -> PlainDisplay | RichDisplay:
    """This run's display (plain lines when no reporter opened one: a test, `svc package`)."""
    return _DISPLAY or _PLAIN


def parallel(argv: list[str]) -> bool:
    """doit runs tasks in parallel (-n N / --process=N, N > 0): each worker's lines are its own."""
    jobs = doit_option(argv, "-n", "--process")
    return jobs.isdigit() and int(jobs) > 0


def doit_option(argv: list[str], short: str, long: str) -> str:
    """The value of one of doit's options in a command line (`-n 4`, `-n4`, `--process=4`), or ""."""
    value = ""
    for i, a in enumerate(argv):
        if a in (short, long) and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(long + "="):
            value = a.split("=", 1)[1]
        elif a.startswith(short) and len(a) > len(short) and not a.startswith("--"):
            value = a[len(short):]
    return value


def wants_rich(stream, quiet: bool, argv: list[str]) -> bool:
    """A live view only for a person at a terminal, one task at a time."""
    if quiet or os.environ.get("COPILOT_DOIT_PLAIN", "").lower() not in OFF:
        return False
    if os.environ.get("TERM", "") == "dumb" or parallel(argv):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def open_display(stream, quiet: bool, argv: list[str]) -> PlainDisplay | RichDisplay:
    """The display of this run, writing to the reporter's stream; `display()` returns it from now on."""
    global _DISPLAY
    _DISPLAY = RichDisplay(stream) if wants_rich(stream, quiet, argv) else PlainDisplay(stream.write)
    return _DISPLAY
