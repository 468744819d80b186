#!/usr/bin/env python3
"""Opens csmil's report.html and index.html in real headless Chromium and reports what a reader sees.

    /usr/bin/python3 tools/check_report_page.py REPORT_FOLDER OUTPUT_DIR

Debian's chromium and chromium-driver through Selenium (python3-selenium), all installed by scripts/setup.
Both pages are loaded from file:// URLs. Prints one JSON object:

- console: every browser log entry (console messages, failed loads) for both pages; the pages must have none;
- control_console: the log of a control page with a missing image, which must not be empty;
- qc_status, probability, ticks: the text of the QC banner, the probability and the colour scale's values;
- images: per <img>, its class, natural width and whether it decoded;
- stage: the thumbnail's box in the screenshot (CSS pixels) and the device pixel ratio;
- screenshots: report.png (overlays as the page opens), report-no-attention.png (after unticking the
  attention heatmap), index.png;
- index_rows: the index's rows (slide, QC, probability) and the link of the first one, and whether following
  that link opened the report page.

The caller (Tests/DaemonTests/ReportPageBrowserTests.swift) judges these.
"""
import json
import os
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def full_page_screenshot(driver, path):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(1000, min(int(height) + 40, 8000)))
    driver.save_screenshot(str(path))


def main():
    folder = Path(sys.argv[1]).resolve()
    out = Path(sys.argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = {"console": []}
    driver = browser()
    try:
        driver.get((folder / "report.html").as_uri())
        driver.execute_script("return document.readyState")
        result["console"] += [dict(entry, page="report.html") for entry in driver.get_log("browser")]
        result["title"] = driver.title
        result["qc_status"] = driver.find_element(By.ID, "qc-status").text
        result["probability"] = driver.find_element(By.ID, "probability").text
        result["ticks"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#legend .ticks span")]
        result["legend"] = driver.find_element(By.ID, "legend").text
        result["images"] = driver.execute_script(
            "return Array.from(document.images).map(i => ({cls: i.className, natural_width: i.naturalWidth,"
            " complete: i.complete}))")
        full_page_screenshot(driver, out / "report.png")
        stage = driver.find_element(By.CSS_SELECTOR, ".stage")
        result["stage"] = stage.rect
        result["device_pixel_ratio"] = driver.execute_script("return window.devicePixelRatio")
        result["top_tiles"] = len(driver.find_elements(By.CSS_SELECTOR, "#top-tiles img.crop"))
        driver.find_element(By.CSS_SELECTOR, "label[for=show-attention]").click()
        result["attention_visible_after_untick"] = driver.find_element(
            By.CSS_SELECTOR, ".stage .attention").is_displayed()
        driver.save_screenshot(str(out / "report-no-attention.png"))
        result["console"] += [dict(entry, page="report.html") for entry in driver.get_log("browser")]

        driver.set_window_size(1280, 1000)
        driver.get((folder.parent / "index.html").as_uri())
        result["console"] += [dict(entry, page="index.html") for entry in driver.get_log("browser")]
        rows = driver.find_elements(By.CSS_SELECTOR, "#slides tr")[1:]
        result["index_rows"] = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        full_page_screenshot(driver, out / "index.png")
        link = driver.find_element(By.CSS_SELECTOR, "#slides tr td a")
        result["index_first_link"] = link.get_attribute("href")
        link.click()
        result["followed_link_title"] = driver.title
        result["console"] += [dict(entry, page="index.html → report") for entry in driver.get_log("browser")]

        # A control: a page with a missing image must show up in the log, or an empty log proves nothing.
        control = out / "control.html"
        control.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>control</title></head>'
                           '<body><img src="missing.png" alt=""></body></html>')
        driver.get(control.as_uri())
        result["control_console"] = driver.get_log("browser")
    finally:
        driver.quit()
    result["screenshots"] = {name: str(out / name) for name in ("report.png", "report-no-attention.png", "index.png")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
