"""The Flask app of bench/framework.py, the same for every server: what a
small site serves most, a JSON endpoint and a page from a Jinja template.

    GET /api/products   JSON: the first 10 of 20 products and their count
    GET /products       HTML: every product in a table, from templates/
"""

from flask import Flask, jsonify, render_template

app = Flask(__name__)

PRODUCTS = [
    {
        "id": i,
        "name": f"Product {i} <special edition>" if i % 7 == 0 else f"Product {i}",
        "price": round(9.99 + i * 1.25, 2),
        "tags": ["new", "sale", "popular"][: i % 4],
    }
    for i in range(1, 21)
]


@app.get("/api/products")
def products_json():
    return jsonify(products=PRODUCTS[:10], total=len(PRODUCTS))


@app.get("/products")
def products_page():
    return render_template("products.html", title="Products", products=PRODUCTS)
