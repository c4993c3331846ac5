#!/usr/bin/env python3
"""The customer's order page in a real browser: Chromium (headless, phone-sized) driven by Selenium through
chromedriver, against real suites started with rescindctl (the four daemons over mutual TLS, SQLite files).

What a customer does and sees, in three stores:
  1. a store with a one-hour window: the link shows the deadline; the customer changes a quantity, cancels with
     a reason and sees the refund; "Order again" opens the new order's own page;
  2. a store whose window has closed (0 s): no Cancel, no Edit, and why, in English and in Bokmål;
  3. a store that approves cancellations first: "Ask to cancel", the page says the request was sent until staff
     approve it (rescindctl requests approve), then shows the refund.

    python3 Tests/Browser/order_page.py .build/debug/rescindctl [--screenshot docs/order-page.png]

Needs Debian's chromium and chromium-driver, and selenium (pip). Prints one line per check; exits 1 at the first
failure. Waits for what the page shows (a reload until the saga's outcome is there), never for a fixed time.
"""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "protocol", "interop"))
from rescind_client import Connection, check  # noqa: E402

WAIT_SECONDS = 30


@contextlib.contextmanager
def suite(rescindctl, *store):
    """A suite of its own, its store set with `--store key=value`; stopped and removed after."""
    directory = tempfile.mkdtemp(prefix="rescind-browser-")
    arguments = [rescindctl, "up", "--dir", directory, "--json"]
    for setting in store:
        arguments += ["--store", setting]
    try:
        started = subprocess.run(arguments, capture_output=True, text=True)
        if started.returncode != 0:
            print(started.stdout[-2000:], started.stderr[-2000:])
        check(started.returncode == 0, f"rescindctl up {' '.join(store)}")
        manifest = json.load(open(os.path.join(directory, "suite.json")))
        yield directory, manifest
    finally:
        subprocess.run([rescindctl, "down", "--dir", directory], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def place(manifest, sku, quantity, price):
    """Places an order as the store's checkout would (the independent Python client, over mutual TLS)."""
    tls = manifest["operator_tls"]
    inventory = Connection(manifest["daemons"]["inventory"]["endpoint"], tls, expected_identity="inventory")
    inventory.call("inventory.set_stock", {"sku": sku, "location": "shop", "on_hand": 50})
    orders = Connection(manifest["daemons"]["orders"]["endpoint"], tls, expected_identity="orders")
    order = orders.call("orders.place", {
        "customer_email": "browser@example.com", "currency": "EUR", "source": "online_store",
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": price}], "payment_method": "pm_card_visa",
    }, idempotency_key=f"browser-{uuid.uuid4()}")
    check(order["status"] == "open" and order["status_link"].startswith(manifest["storefront_url"]),
          f"an order of {quantity} {sku} is placed, with its order-status link")
    return order


def browser(language):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=412,1100", f"--lang={language}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def text(driver, element_id):
    """The text of the element with this id, or None when the page has none."""
    try:
        return driver.find_element(By.ID, element_id).text
    except NoSuchElementException:
        return None


def submit(driver, button):
    """Presses a form's button and waits until the page it leads to has replaced this one (a click returns
    before the navigation ends, and the old page's elements would answer meanwhile)."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.05).until(expected_conditions.staleness_of(page))


def status(driver):
    return driver.find_element(By.ID, "status").get_attribute("data-status")


def reload_until_status(driver, wanted):
    """Reloads the page until it shows the order `wanted` (a saga's outcome), for at most WAIT_SECONDS."""
    def shown(d):
        d.refresh()
        return status(d) == wanted
    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2).until(shown)
    check(status(driver) == wanted, f"the page shows the order {wanted}")


def window_open(rescindctl, screenshot):
    with suite(rescindctl) as (_, manifest):
        order = place(manifest, "MUG", 2, 1200)
        driver = browser("en-GB")
        try:
            driver.get(order["status_link"])
            check((text(driver, "deadline") or "").startswith("You can cancel until"),
                  f"the page says until when: {text(driver, 'deadline')!r}")
            check(text(driver, "total") == "24.00 EUR", "the page shows the total")
            if screenshot:
                os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
                driver.save_screenshot(screenshot)
                check(os.path.getsize(screenshot) > 0, f"a screenshot of the page is in {screenshot}")

            # One more mug: the form's number field, then Save.
            field = driver.find_element(By.ID, "quantity.MUG")
            field.clear()
            field.send_keys("3")
            submit(driver, driver.find_element(By.CSS_SELECTOR, "#edit button[type=submit]"))
            check("Your order is changed" in (text(driver, "notice") or ""), "after Save, the page says it changed")
            check(text(driver, "total") == "36.00 EUR", "the new total is charged: 36.00 EUR")

            # Cancel with a reason: under way at once, then cancelled with the refund shown.
            driver.find_element(By.ID, "reason").send_keys("ordered twice")
            submit(driver, driver.find_element(By.CSS_SELECTOR, "#cancel button[type=submit]"))
            check("under way" in (text(driver, "notice") or ""), "after Cancel, the page says it is under way")
            reload_until_status(driver, "cancelled")
            check(text(driver, "refunded") == "36.00 EUR", "the page shows what was refunded: 36.00 EUR")
            check(not driver.find_elements(By.ID, "cancel") and not driver.find_elements(By.ID, "edit"),
                  "a cancelled order offers no Cancel and no Edit")
            check("Cancelled" in (text(driver, "timeline") or ""), "the timeline says it was cancelled")
            check("36.00 EUR refunded to your card" in (text(driver, "timeline") or ""),
                  "the timeline says where the money went: to the card")

            # Order again: the new order's own page.
            first = driver.current_url
            submit(driver, driver.find_element(By.CSS_SELECTOR, "#reorder button[type=submit]"))
            check("/o/" in driver.current_url and "notice" not in driver.current_url, "Order again opens another page")
            check(status(driver) == "open", "the new order is open")
            check((text(driver, "deadline") or "").startswith("You can cancel until"),
                  "and can be cancelled in its own window")
        finally:
            driver.quit()


def window_closed(rescindctl):
    with suite(rescindctl, "cancellation_window_seconds=0") as (_, manifest):
        order = place(manifest, "CAP", 1, 1500)
        for language, why in (("en-GB", "The time to cancel this order has run out."),
                              ("nb-NO", "Fristen for å kansellere denne bestillingen har gått ut.")):
            driver = browser(language)
            try:
                driver.get(order["status_link"])
                check(not driver.find_elements(By.ID, "cancel") and not driver.find_elements(By.ID, "edit"),
                      f"past the window ({language}): no Cancel, no Edit")
                check(text(driver, "why") == why, f"and why: {text(driver, 'why')!r}")
            finally:
                driver.quit()


def approval_store(rescindctl):
    with suite(rescindctl, "customer_cancel_approval=always") as (directory, manifest):
        order = place(manifest, "LAMP", 1, 4500)
        driver = browser("en-GB")
        try:
            driver.get(order["status_link"])
            button = driver.find_element(By.CSS_SELECTOR, "#cancel button[type=submit]")
            check(button.text == "Ask to cancel", "an approval store's button asks")
            check("approves cancellations first" in (text(driver, "approval") or ""), "and says staff decide")
            driver.find_element(By.ID, "reason").send_keys("found a better lamp")
            submit(driver, button)
            check("request to cancel was sent" in (text(driver, "notice") or ""), "the page says the request was sent")
            check(status(driver) == "cancel_requested", "the order is cancel_requested")
            driver.refresh()
            check("request to cancel was sent" in (text(driver, "why") or ""), "and keeps saying so on every visit")
            check(not driver.find_elements(By.ID, "cancel"), "with no second request to make")

            approved = subprocess.run(
                [rescindctl, "requests", "approve", str(order["id"]), "--dir", directory, "--json"],
                capture_output=True, text=True)
            if approved.returncode != 0:
                print(approved.stdout[-2000:], approved.stderr[-2000:])
            check(approved.returncode == 0, "staff approve it with rescindctl requests approve")
            reload_until_status(driver, "cancelled")
            check(text(driver, "refunded") == "45.00 EUR", "the page shows the refund once staff approved")
        finally:
            driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rescindctl")
    parser.add_argument("--screenshot", help="where to save a PNG of the order page")
    arguments = parser.parse_args()
    window_open(arguments.rescindctl, arguments.screenshot)
    window_closed(arguments.rescindctl)
    approval_store(arguments.rescindctl)
    print("order page in a browser: every check passed")


if __name__ == "__main__":
    main()
