"""The admin commands of ``creditdesk-backend``: each renders what a plain function returns, as text or JSON.

Exit status: 0 done, 1 ``check`` found a fault (or the database failed), 2 bad input (an unknown email,
order or event, a bad amount) with one line on stderr and nothing written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tabulate import tabulate

from backend import expiry, grants, holds, ledger, migrations, reconcile, support, webhooks
from backend.config import Settings
from backend.db import Database
from backend.errors import AdjustmentBelowZero, InvalidAdjustment, MalformedEvent, NoDatabase, UnknownEvent
from backend.orders import Order
from backend.services import Services
from backend.visible import visible, visible_json
from resources import currencies


def require_database(settings: Settings) -> None:
    """Refuse a database that is not there: a mistyped SQLite path must not become a new, empty database whose
    ledger "adds up" (only ``serve`` and ``migrate`` create one), and a PostgreSQL database must exist and be at
    this version's schema (``migrate`` brings it there; the commands, like ``serve``, never migrate one)."""
    if settings.database_url is None or settings.database_url.startswith("sqlite"):
        path = Path(make_url(settings.database).database or "")
        if not path.is_file() or path.stat().st_size == 0:
            raise NoDatabase(f"there is no database at {path}: check CREDITDESK_DB or CREDITDESK_DATABASE_URL "
                             "(only serve and migrate create one)")
        return
    db = Database(settings.database, pool_size=1)
    try:
        # The engine's own connection, not db.read(): a database that cannot be reached is said in the one
        # line of the command's answer, not also in a storage log line before it.
        with db.engine.connect() as conn:
            at = migrations.stored_version(conn)
    except OperationalError as exc:
        # libpq gives no SQLSTATE for a refused connection: the server's (English) sentence is all there is.
        if re.search(r'database ".*" does not exist', str(exc.orig)):
            raise NoDatabase(f"there is no database {settings.database_name}: check CREDITDESK_DATABASE_URL "
                             "(create it, then run `creditdesk-backend migrate`)") from None
        raise
    finally:
        db.close()
    if at != migrations.newest():
        raise NoDatabase(f"the database {settings.database_name} is at schema version {at or 'none'} and this "
                         f"backend needs {migrations.newest()}: run `creditdesk-backend migrate`")


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    require_database(settings)
    db = Database(settings.database)
    try:
        migrations.prepare(db)
        yield db
    finally:
        db.close()


def _print_json(value: Any) -> None:
    print(visible_json(value))


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    """Rows as a table, every cell's text made visible (see backend.visible): no cell can move the cursor."""
    safe = [[visible(cell) for cell in row] for row in rows]
    return tabulate(safe, headers=headers, tablefmt="simple", disable_numparse=True) if rows else "  (none)"


def show(line: str = "") -> None:
    """One line of output, with what users and Stripe wrote in it made visible."""
    print(visible(line))


def _money(amount: int, currency: str) -> str:
    return currencies.plain(amount, currency)


def _paid(order: Order) -> str:
    """What the payment took, with its discount and tax where there were any."""
    if order.amount_paid is None:
        return ""
    parts = [_money(order.amount_paid, order.currency)]
    if order.amount_discount:
        parts.append(f"-{_money(order.amount_discount, order.currency)} discount")
    if order.amount_tax:
        parts.append(f"{_money(order.amount_tax, order.currency)} tax")
    return ", ".join(parts)


def user(settings: Settings, email: str, *, as_json: bool) -> int:
    with database(settings) as db:
        report = support.user_report(db, email)
    if as_json:
        _print_json({
            "user": report.user.as_json(), "balance": report.balance,
            "reserved": report.reserved, "available": report.balance - report.reserved,
            **grants.summary(report.grants), "grants": [grant.as_json() for grant in report.grants],
            "openHolds": [{**hold.as_json(report.as_of), "idempotencyKey": hold.idempotency_key}
                          for hold in report.open_holds],
            "orders": [{
                "id": o.id, "sessionId": o.session_id, "pack": o.pack_id, "amount": o.amount, "currency": o.currency,
                "status": o.status, "creditsGranted": o.credits_granted, "creditsClawedBack": o.credits_clawed_back,
                "amountRefunded": o.amount_refunded, "amountDisputed": o.amount_disputed,
                "amountPaid": o.amount_paid, "amountDiscount": o.amount_discount, "amountTax": o.amount_tax,
                "refusal": o.refusal,
                "paymentIntent": o.payment_intent, "createdAt": o.created_at, "updatedAt": o.updated_at,
            } for o in report.orders],
            "ledger": [{"id": e.id, "type": e.type, "amount": e.amount, "balanceAfter": e.balance_after,
                        "reference": e.reference, "description": e.description, "createdAt": e.created_at,
                        **({"supportNote": report.notes[e.id]} if e.id in report.notes else {})}
                       for e in report.entries],
            "events": [e.as_json() for e in report.events],
            "supportReports": [r.as_json() for r in report.reports],
        })
        return 0
    show(f"Account {report.user.id}  {report.user.email}")
    show(f"Balance {report.balance} credits")
    if report.grants:
        show("Grants, in the order they are spent")
        print(_table([[g.id, g.kind, g.source, g.amount, g.remaining, g.expires_at or "", g.expired_at or "",
                       g.description] for g in report.grants],
                     ["grant", "kind", "source", "granted", "left", "expires", "expired (spared by holds)",
                      "description"]))
    if report.open_holds:
        show(f"Reserved by {len(report.open_holds)} open hold(s) {report.reserved} credits, available "
             f"{report.balance - report.reserved}")
        print(_table([[hold.id, hold.amount, hold.created_at, hold.expires_at, hold.feature or "", hold.description,
                       hold.idempotency_key] for hold in report.open_holds],
                     ["hold", "credits", "placed", "expires", "feature", "description", "idempotency key"]))
    show()
    show("Orders, newest first")
    print(_table([[o.id, o.session_id, o.pack_id, _money(o.amount, o.currency), _paid(o), o.status,
                   o.credits_granted, o.credits_clawed_back, _money(o.amount_refunded, o.currency),
                   _money(o.amount_disputed, o.currency), o.created_at] for o in report.orders],
                 ["order", "checkout session", "pack", "price", "paid", "status", "granted", "clawed back",
                  "refunded", "disputed", "created"]))
    for o in report.orders:
        if o.refusal:
            show(f"  ! {o.id}: {o.refusal}")
    show()
    show(f"Last {len(report.entries)} ledger entries")
    print(_table([[e.id, e.created_at, e.type, f"{e.amount:+d}", e.balance_after, e.reference, e.description,
                   report.notes.get(e.id, "")] for e in report.entries],
                 ["entry", "when", "type", "credits", "balance after", "reference", "description (the user sees)",
                  "support note"]))
    show()
    show("Stripe events about these orders")
    print(_events_table(report.events))
    show()
    show("Support reports sent from the app (Help → Report a problem), newest first")
    print(_table([[r.id, r.created_at, r.first_line] for r in report.reports], ["report", "sent", "first line"]))
    return 0


def _events_table(events: list[support.StoredEvent]) -> str:
    return _table([[e.received_at, e.id, e.type, e.outcome, e.detail or "", e.order_id or "", e.source or "",
                    e.attempts] for e in events],
                  ["received", "event", "type", "outcome", "detail", "order", "via", "runs"])


def parse_expiry(text: str, now: datetime) -> datetime:
    """``--expires``: a date (its end, 24:00 UTC), an ISO 8601 instant (UTC if it names no zone), or a lead from now
    (``30d``, ``12h``). InvalidAdjustment otherwise."""
    text = text.strip()
    lead = re.fullmatch(r"([0-9]{1,5})([dh])", text)
    if lead:
        number = int(lead.group(1))
        return now + (timedelta(days=number) if lead.group(2) == "d" else timedelta(hours=number))
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidAdjustment("--expires takes a date (2027-01-31), an ISO 8601 instant or a lead (30d, 12h)") \
            from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def adjust(settings: Settings, email: str, amount_text: str, reason: str, key: str | None, *,
           public_note: str | None = None, allow_negative: bool = False, promotional: bool = False,
           expires: str | None = None) -> int:
    digits = amount_text.replace("_", "")
    # ASCII digits only: int() also reads Arabic-Indic or fullwidth digits, which support did not mean to type.
    # Anything else is refused below with the same sentence as any other bad amount.
    amount = int(digits, 10) if re.fullmatch(r"[+-]?[0-9]+", digits) else 0
    support.check_adjustment(amount, reason, key, public_note)  # before the database is opened (or migrated)
    expires_at = parse_expiry(expires, datetime.now(UTC)) if expires is not None else None
    with database(settings) as db:
        try:
            entry, new = support.adjust(db, email, amount, reason, key, public_note=public_note,
                                        allow_negative=allow_negative, promotional=promotional,
                                        expires_at=expires_at)
        except AdjustmentBelowZero as below:
            if not _confirmed(f"{visible(email)}: {below}. Go ahead? [y/N] "):
                print(f"creditdesk-backend: not adjusted: {below}; confirm it at the prompt, or add "
                      "--allow-negative", file=sys.stderr)
                return 2
            entry, new = support.adjust(db, email, amount, reason, key, public_note=public_note,
                                        allow_negative=True, promotional=promotional,
                                        expires_at=expires_at)
    if new:
        show(f"adjusted by {entry.amount:+d} credits: entry {entry.id}, balance now {entry.balance_after}")
    else:
        show(f"already adjusted with this key: entry {entry.id} ({entry.amount:+d} credits); nothing changed")
    return 0


def _confirmed(question: str) -> bool:
    """Ask on the terminal; never when nobody is there to answer (a script, a pipe): that is a no, and so is
    Ctrl-C or Ctrl-D. The question goes to stderr, so that it is seen when stdout is a file."""
    if not sys.stdin.isatty():
        return False
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):
        print(file=sys.stderr)  # the refusal that follows starts on a line of its own
    return answer.strip().lower() in ("y", "yes")


def events(settings: Settings, *, order: str | None, session: str | None, type: str | None, as_json: bool) -> int:
    with database(settings) as db:
        found = support.find_events(db, order_id=order, session_id=session, type=type)
        failed = [] if order or session else support.failed(db, type=type)
    if as_json:
        _print_json({"events": [e.as_json() for e in found], "failedDeliveries": [f.as_json() for f in failed]})
        return 0
    show(f"{len(found)} stored event(s), newest first")
    print(_events_table(found))
    if not (order or session):
        show()
        show("Deliveries that could not be processed, newest first")
        print(_table([[f.received_at, f.outcome, "yes" if f.signature_valid else "no", f.event_id or "",
                       f.event_type or "", f.error or ""] for f in failed],
                     ["received", "outcome", "signed", "event", "type", "error"]))
    return 0


def replay(settings: Settings, event_id: str) -> int:
    """Run a stored event again; a stored body that is not an event is bad input (exit 2), not a traceback."""
    provider = None
    if settings.stripe_secret_key:  # a session event of another API version is read as Stripe has it now
        from backend.payments.stripe_provider import StripeProvider

        provider = StripeProvider(settings.stripe_secret_key, settings.stripe_api_base)
    with database(settings) as db:
        try:
            processed = webhooks.replay(db, event_id, livemode=settings.stripe_livemode,
                                        sessions=provider.retrieve_session if provider else None)
        except MalformedEvent as exc:  # an event, but its object lacks what processing needs: nothing written
            raise UnknownEvent(f"the stored body of {event_id} is not an event that can be replayed "
                               f"({str(exc)[:100] or type(exc).__name__})") from None
    detail = f" ({processed.detail})" if processed.detail else ""
    show(f"replayed {processed.event_id} ({processed.type}): {processed.outcome}{detail}")
    return 0


def run_reconcile(settings: Settings, since_text: str, *, as_json: bool, public_url: str) -> int:
    since, note = reconcile.parse_since(since_text)
    require_database(settings)
    services = Services.build(settings, public_url)
    try:
        report = reconcile.reconcile(services, since=since, trigger="command")
    finally:
        services.db.close()
    if note:
        print(f"creditdesk-backend: {visible(note)}", file=sys.stderr)
    if as_json:
        _print_json(report.as_json())
        return 0
    show(f"Reconciled with {services.provider.name} since {report.since}")
    show(f"  events read: {report.events_seen}; not seen before and now applied: {len(report.events_applied)}")
    for p in report.events_applied:
        show(f"    {p.event_id}  {p.type}  -> {p.outcome}" + (f"  ({p.detail})" if p.detail else ""))
    show(f"  orders waiting on checkout checked: {report.orders_checked}; changed: {len(report.orders_changed)}")
    for c in report.orders_changed:
        show(f"    {c.order_id}  {c.before} -> {c.after}")
    show(f"  paid orders whose refunds and disputes were re-read: {report.payments_checked}; "
          f"settled anew: {len(report.payments_changed)}")
    for pc in report.payments_changed:
        show(f"    {pc.order_id}  {pc.outcome} {abs(pc.credits)} credits -> {pc.status}")
    if report.pruned_deliveries or report.pruned_bodies:
        show(f"  past retention: {report.pruned_deliveries} failed deliveries removed, "
              f"{report.pruned_bodies} event bodies dropped")
    for error in report.errors:
        show(f"  could not finish: {error}")
    return 0


def check(settings: Settings) -> int:
    """The ledger's invariants, and the holds' agreement with it once the holds past their expiry are written down
    as expired (the one thing ``check`` writes; every read treats them so already)."""
    with database(settings) as db:
        now = datetime.now(UTC)
        with db.transaction() as conn:
            swept = holds.sweep(conn, now)
        expired = expiry.sweep(db.transaction, now, limit=None)
        with db.transaction() as conn:
            warned = grants.warn(conn, now, settings.expiry_warnings)
        with db.read() as conn:
            problems = ledger.check_invariants(conn) + holds.problems(conn, now) + grants.problems(conn, now)
    if swept:
        show(f"{swept} hold(s) past their expiry marked expired")
    if expired:
        show(f"{expired} grant(s) past their expiry written down as expired")
    if warned:
        show(f"{warned} credits_expiring alert(s) made")
    for problem in problems:
        show(problem)
    show("the ledger adds up" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def migrate(settings: Settings) -> int:
    db = Database(settings.database)
    try:
        before, after = migrations.upgrade(db)
    finally:
        db.close()
    if before == after:
        show(f"the database is up to date (schema version {after})")
    else:
        show(f"migrated the database from schema version {before or 'none'} to {after}")
    return 0


def stripe_setup(settings: Settings, url: str | None) -> int:
    from backend.errors import PaymentProviderError
    from backend.payments import stripe_setup
    from backend.payments.base import STRIPE_API_VERSION
    from backend.payments.stripe_provider import StripeProvider, translate

    if not settings.stripe_secret_key:
        print("creditdesk-backend: stripe-setup needs STRIPE_SECRET_KEY (the secret key of the Stripe account "
              "whose webhook endpoint to set up).", file=sys.stderr)
        return 2
    public_url = (url or settings.public_url or "").rstrip("/")
    if not public_url.startswith(("https://", "http://")):
        print("creditdesk-backend: stripe-setup needs the backend's public URL: --url https://credits.example.com "
              "or CREDITDESK_PUBLIC_URL.", file=sys.stderr)
        return 2
    import stripe

    provider = StripeProvider(settings.stripe_secret_key, settings.stripe_api_base)
    try:
        setup = stripe_setup.set_up(provider.client, public_url, webhooks.HANDLED)
    except stripe.StripeError as exc:
        error: PaymentProviderError = translate(exc)
        print(f"creditdesk-backend: Stripe did not set up the endpoint: {visible(error)}", file=sys.stderr)
        return 1
    events = len(webhooks.HANDLED)
    if setup.created:
        show(f"Created the webhook endpoint {setup.endpoint_id} for {setup.url}")
        show(f"  API version {STRIPE_API_VERSION}, the {events} event types Creditdesk handles.")
        show("Its signing secret, shown this once: set it as STRIPE_WEBHOOK_SECRET wherever the backend runs.")
        print(setup.secret)
        return 0
    if not setup.problems:
        show(f"The webhook endpoint {setup.endpoint_id} for {setup.url} is set up: API version "
              f"{STRIPE_API_VERSION}, the {events} event types Creditdesk handles.")
        show("(Stripe shows its signing secret only when it is created: the dashboard has it.)")
        return 0
    show(f"The webhook endpoint {setup.endpoint_id} for {setup.url} differs from what Creditdesk needs:")
    for problem in setup.problems:
        show(f"  - {problem}")
    return 1
