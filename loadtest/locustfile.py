"""The traffic of `make load`: CRM clients writing and reading over the API, and signed-in members
browsing the pages (and now and then adding a note).

Runs inside locust (gevent), so it imports nothing from Django: loadtest/run.py hands it the tenant,
keys and logins in POV_LOAD_SETUP (JSON). Every request's kind and status, and every write the server
acknowledged (by its unique id), go to the JSON-lines file POV_LOAD_RESULTS, which run.py compares
with the database afterwards. Each id starts with the run's prefix, so the rows a run created can be
told from the seed.
"""

import itertools
import json
import os
import random
import re
from datetime import UTC, datetime, timedelta

from locust import HttpUser, between, events, task

SETUP = json.loads(os.environ.get("POV_LOAD_SETUP") or "{}")
RUN = SETUP.get("run", "local")
SLUG = SETUP.get("slug", "")
OFFERINGS = SETUP.get("offerings", {})  # key -> [milestone keys]
BATCH_CUSTOMERS = 20  # each with two purchases and one event per purchase: 100 items
ENGAGEMENT_LINK = re.compile(r"/t/[\w-]+/engagements/([0-9a-f-]{36})/")
users = itertools.count(1)
results = open(os.environ["POV_LOAD_RESULTS"], "a", encoding="utf-8") if os.environ.get("POV_LOAD_RESULTS") else None  # noqa: SIM115 - open for the whole run


def write_line(line):
    if results is not None:
        results.write(json.dumps(line) + "\n")


@events.request.add_listener
def record_request(request_type, name, response_time, response, exception, **kwargs):
    """Every response's status; 0 when no response came (connection refused, reset, timed out)."""
    status = getattr(response, "status_code", 0) or 0
    error = None if status else repr(exception)
    write_line({"t": "request", "kind": name, "method": request_type, "status": status, "ms": response_time,
                "start": kwargs.get("start_time"), "error": error})  # fmt: skip


def acknowledge(table, ids):
    """The server answered 2xx for these writes: each must now be exactly one row of `table`."""
    if ids:
        write_line({"t": "ack", "table": table, "ids": list(ids)})


@events.quitting.add_listener
def close_results(**kwargs):
    if results is not None:
        results.close()


def now():
    return datetime.now(UTC)


class IdMaker:
    """Unique ids for one simulated user: <run>-u<user>-<kind><n>."""

    def __init__(self):
        self.user = next(users)
        self.serial = itertools.count(1)

    def __call__(self, kind):
        return f"{RUN}-u{self.user}-{kind}{next(self.serial)}"


def purchase_body(external_id, customer, offering):
    purchased_at = now() - timedelta(days=random.uniform(1, 60))
    return {
        "external_id": external_id, "customer": customer, "offering": offering,
        "purchased_at": purchased_at.isoformat(), "amount": f"{random.randint(50, 5000)}.00", "currency": "EUR",
        "owner": random.choice(SETUP["owners"]), "sales_rep": random.choice(SETUP["sales_reps"]),
    }  # fmt: skip


def event_body(external_id, purchase, offering):
    """A milestone of the purchase's journey, or now and then a satisfaction score; after any purchase time."""
    body = {"purchase": purchase, "external_id": external_id,
            "occurred_at": (now() - timedelta(minutes=random.uniform(1, 600))).isoformat()}  # fmt: skip
    if random.random() < 0.2:
        return {**body, "type": "satisfaction", "score": random.randint(3, 5)}
    return {**body, "type": "milestone", "milestone": random.choice(OFFERINGS[offering])}


class ApiWriter(HttpUser):
    """A CRM or billing system: sales, milestones and customers as they happen, and nightly batches."""

    weight = 4
    wait_time = between(0.1, 0.5)

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {SETUP['write_key']}"
        self.new_id = IdMaker()
        self.purchases = []  # (external_id, offering) this user's purchases the server acknowledged

    def post(self, path, body, kind):
        """(status, parsed body or None)."""
        with self.client.post(path, json=body, name=kind, catch_response=True) as response:
            try:
                return response.status_code, response.json()
            except ValueError:
                return response.status_code, None

    def a_purchase_to_follow(self):
        """Mostly this user's own recent sales, sometimes one of the seeded engagements."""
        if self.purchases and random.random() < 0.7:
            return random.choice(self.purchases[-200:])
        return random.choice(SETUP["seed_purchases"])

    @task(3)
    def sale(self):
        offering = random.choice(list(OFFERINGS))
        purchase, customer = self.new_id("p"), self.new_id("c")
        body = purchase_body(purchase, {"external_id": customer, "name": f"Customer {customer}"}, offering)
        status, _ = self.post("/api/v1/purchases/", body, "api_purchase")
        if 200 <= status < 300:
            acknowledge("purchase", [purchase])
            acknowledge("customer", [customer])  # created with the purchase, in its transaction
            self.purchases.append((purchase, offering))

    @task(5)
    def milestone(self):
        purchase, offering = self.a_purchase_to_follow()
        event = self.new_id("e")
        status, _ = self.post("/api/v1/events/", event_body(event, purchase, offering), "api_event")
        if 200 <= status < 300:
            acknowledge("event", [event])

    @task(1)
    def customer(self):
        customer = self.new_id("c")
        body = {"external_id": customer, "name": f"Customer {customer}", "segment": random.choice(["smb", "ent"])}
        status, _ = self.post("/api/v1/customers/", body, "api_customer")
        if 200 <= status < 300:
            acknowledge("customer", [customer])

    @task(1)
    def batch(self):
        items, purchases = [], []
        for _ in range(BATCH_CUSTOMERS):
            customer = self.new_id("c")
            items.append({"kind": "customer", "data": {"external_id": customer, "name": f"Customer {customer}"}})
            for _ in range(2):
                offering, purchase = random.choice(list(OFFERINGS)), self.new_id("p")
                purchases.append((purchase, offering))
                items.append({"kind": "purchase", "data": purchase_body(purchase, customer, offering)})
        items += [{"kind": "event", "data": event_body(self.new_id("e"), p, o)} for p, o in purchases]
        status, body = self.post("/api/v1/batch/", {"items": items}, "api_batch")
        if status == 200 and body:
            self.acknowledge_items(items, body["results"])

    def acknowledge_items(self, items, item_results):
        done = {"customer": [], "purchase": [], "event": []}
        for result in item_results:
            if 200 <= result["status"] < 300:
                item = items[result["index"]]
                done[item["kind"]].append(item["data"]["external_id"])
        for table, ids in done.items():
            acknowledge(table, ids)
        acked = set(done["purchase"])
        for item in items:
            if item["kind"] == "purchase" and item["data"]["external_id"] in acked:
                self.purchases.append((item["data"]["external_id"], item["data"]["offering"]))


class ApiReader(HttpUser):
    """A reporting integration: engagement lists with filters, single engagements, the headline metrics."""

    weight = 3
    wait_time = between(0.2, 1.0)

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {SETUP['read_key']}"
        self.engagement_ids = []

    @task(3)
    def engagements(self):
        offering = random.choice(list(OFFERINGS))
        query = random.choice(["", "?status=on_track", "?status=stalled", f"?offering={offering}"])
        response = self.client.get(f"/api/v1/engagements/{query}", name="api_engagements")
        if response.status_code == 200:
            self.engagement_ids = [row["id"] for row in response.json()["results"]] or self.engagement_ids

    @task(3)
    def engagement(self):
        if not self.engagement_ids:
            return self.engagements()
        self.client.get(f"/api/v1/engagements/{random.choice(self.engagement_ids)}/", name="api_engagement")

    @task(2)
    def metrics(self):
        query = random.choice(["", f"?offering={random.choice(list(OFFERINGS))}"])
        self.client.get(f"/api/v1/metrics/summary/{query}", name="api_metrics_summary")


class Member(HttpUser):
    """A person signed in through the login form: the overview, engagements, one engagement, the alert queue."""

    weight = 3
    wait_time = between(1.0, 3.0)

    def on_start(self):
        self.new_id = IdMaker()
        self.engagement_ids = []
        self.client.get("/accounts/login/", name="page_login_form")
        form = {"username": random.choice(SETUP["members"]), "password": SETUP["password"],
                "csrfmiddlewaretoken": self.csrf_token()}  # fmt: skip
        with self.client.post("/accounts/login/", data=form, name="page_login", allow_redirects=False,
                              catch_response=True) as response:  # fmt: skip
            if response.status_code != 302:
                response.failure(f"sign-in answered {response.status_code}, not a redirect")
        self.engagements()  # where a member starts the day

    def csrf_token(self):
        return self.client.cookies.get("csrftoken", "")

    def page(self, path, kind):
        return self.client.get(f"/t/{SLUG}/{path}", name=kind)

    @task(3)
    def overview(self):
        self.page("", "page_overview")

    @task(2)
    def engagements(self):
        response = self.page("engagements/", "page_engagements")
        if response.status_code == 200:
            self.engagement_ids = ENGAGEMENT_LINK.findall(response.text) or self.engagement_ids

    @task(3)
    def engagement(self):
        if not self.engagement_ids:
            return self.engagements()
        self.page(f"engagements/{random.choice(self.engagement_ids)}/", "page_engagement")

    @task(2)
    def alerts(self):
        self.page("alerts/", "page_alerts")

    @task(2)
    def note(self):
        """A note through the page's form; it answers with a redirect to the engagement."""
        if not self.engagement_ids:
            return self.engagements()
        note = self.new_id("n")
        form = {"body": f"{note} called the customer, all fine", "csrfmiddlewaretoken": self.csrf_token()}
        path = f"/t/{SLUG}/engagements/{random.choice(self.engagement_ids)}/note/"
        with self.client.post(path, data=form, name="page_note", allow_redirects=False, catch_response=True) as r:
            if r.status_code == 302:
                acknowledge("note", [note])
            else:
                r.failure(f"adding a note answered {r.status_code}")
